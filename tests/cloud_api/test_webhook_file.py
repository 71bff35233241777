"""The webhook file: read only if its owner alone can, plain http only to loopback, and
`mallgate central serve` delivering from it as a real process, killed mid-delivery too."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from cloud_api.server.cli import central_group
from cloud_api.server.phones import SecretFileError
from cloud_api.server.webhooks import load_webhooks
from tests.cloud_api.central import MALL
from tests.cloud_api.processes import central_process, central_processes, issue_token
from tests.cloud_api.webhooks import SECRET, Receiver, receiving
from tests.conftest import free_port


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_webhook_file_holds_webhooks_by_mall(tmp_path: Path) -> None:
    hooks = load_webhooks(secret_file(tmp_path / "hooks", (
        "# mall name url secret\n"
        "mall-a mini https://mini.example.com/hook s1\n\n"
        "mall-a crm https://crm.example.com/in s2\n"
        "mall-b mini http://127.0.0.1:9000/hook s3\n")))
    assert {mall: [(h.name, h.url, h.secret) for h in found]
            for mall, found in hooks.items()} == {
        "mall-a": [("mini", "https://mini.example.com/hook", b"s1"),
                   ("crm", "https://crm.example.com/in", b"s2")],
        "mall-b": [("mini", "http://127.0.0.1:9000/hook", b"s3")]}
    assert "s1" not in repr(hooks)  # secrets stay out of logs and tracebacks


@pytest.mark.parametrize(("text", "problem"), [
    ("mall-a mini https://x.example.com TOPSECRET extra\n",
     "expected `mall_id name url secret`"),
    ("mall-a mini http://x.example.com/hook TOPSECRET\n", "plain http"),
    ("mall-a mini ftp://x.example.com/hook TOPSECRET\n", "not an https:// URL"),
    ("m a https://x.example.com TOPSECRET\nm a https://y.example.com TOPSECRET\n",
     "line 2: webhook a of mall m again"),
])
def test_a_bad_line_is_refused_by_its_number_without_the_secret(
        tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(SecretFileError, match="line") as refused:
        load_webhooks(secret_file(tmp_path / "hooks", text))
    assert problem in str(refused.value)
    assert "TOPSECRET" not in str(refused.value)


def test_central_refuses_a_webhook_file_others_can_read(tmp_path: Path) -> None:
    hooks = secret_file(tmp_path / "hooks", "m mini https://x.example.com/h s\n", 0o640)
    result = CliRunner().invoke(central_group, ["serve", "--db", str(tmp_path / "c.db"),
                                                "--webhook-file", str(hooks)])
    assert result.exit_code == 2
    assert "chmod 600" in result.output


async def test_central_serve_delivers_signed_notices_from_its_webhook_file(
        tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    admin = await issue_token(db, None, MALL, "admin")
    async with receiving(Receiver()) as receiver:
        hooks = secret_file(tmp_path / "hooks",
                            f"{MALL} mini {receiver.url} {SECRET.decode()}\n")
        async with central_processes(db, extra=["--webhook-file", str(hooks)]) as (url,), \
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http:
            members = f"{url}/v1/malls/{MALL}/members"
            async with http.post(members, json={"member_id": "M1"}) as created:
                assert created.status == 201
            async with http.post(f"{members}/M1/adjustments", json={
                    "request_id": "desk-1", "points": 20, "reason": "goodwill"}) as adjusted:
                assert adjusted.status == 201
            await receiver.until(lambda: len(receiver.processed) == 1)
            (notice,) = receiver.processed.values()
            assert (notice["kind"], notice["member_id"], notice["data"]["points"]) == (
                "points.adjusted", "M1", 20)
            assert [r["signed"] for r in receiver.requests] == [True]
            async with http.get(f"{url}/v1/malls/{MALL}/notices") as listed:
                assert json.loads(await listed.text())["notices"] == [notice]


async def test_a_central_killed_mid_delivery_leaves_it_to_the_next_one(
        tmp_path: Path) -> None:
    """SIGKILL while the receiver holds the first attempt: the claim is durable, so the
    restarted central sends the notice again once the dead one's lease is over (six
    timeouts), and the receiver, deduplicating by id, keeps it once."""
    db = tmp_path / "central.db"
    admin = await issue_token(db, None, MALL, "admin")
    timeout = ["--webhook-timeout-s", "0.5"]
    async with receiving(Receiver(hang_first=True)) as receiver:
        hooks = secret_file(tmp_path / "hooks",
                            f"{MALL} mini {receiver.url} {SECRET.decode()}\n")
        extra = ["--webhook-file", str(hooks), *timeout]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {admin}"}
        async with central_process(db, port=port, extra=extra) as first, \
                aiohttp.ClientSession(headers=auth) as http:
            members = f"{url}/v1/malls/{MALL}/members"
            async with http.post(members, json={"member_id": "M1"}) as created:
                assert created.status == 201
            async with http.post(f"{members}/M1/adjustments", json={
                    "request_id": "desk-1", "points": 20, "reason": "goodwill"}) as adjusted:
                assert adjusted.status == 201
            await receiver.until(lambda: len(receiver.requests) == 1)  # held
            first.kill()
            await first.wait()
        receiver.release.set()
        async with central_process(db, port=free_port(), extra=extra):
            await receiver.until(lambda: len(receiver.requests) == 2)
        (notice_id,) = receiver.processed
        assert [(r["id"], r["attempt"], r["signed"]) for r in receiver.requests] == [
            (notice_id, "1", True), (notice_id, "2", True)]
