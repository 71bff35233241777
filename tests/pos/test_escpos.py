from __future__ import annotations

from pathlib import Path

import pytest

from devices.pos.escpos import Kind, Tokenizer, codes, receipt_text, tokenize
from devices.pos.jobs import Splitter
from tests.pos.fixtures import own, shared, shared_files

ALL_SHARED = shared_files()


def test_the_shared_fixtures_are_present() -> None:
    assert len(ALL_SHARED) >= 16


@pytest.mark.parametrize("path", ALL_SHARED, ids=lambda p: p.name)
def test_every_shared_fixture_tokenizes_completely(path: Path) -> None:
    data = path.read_bytes()
    tokens = tokenize(data, "cp437")
    assert b"".join(t.raw for t in tokens) == data
    assert not [t for t in tokens if t.kind is Kind.INCOMPLETE]
    assert not [t.name for t in tokens if t.name.endswith("?")], "unknown command"
    text = receipt_text(tokens)
    # No command or parameter byte leaks into the text.
    assert not set(text) & {chr(c) for c in range(0x20) if c not in (0x09, 0x0A)}


@pytest.mark.parametrize("path", ALL_SHARED, ids=lambda p: p.name)
def test_every_shared_fixture_is_one_job_ended_by_its_cut(path: Path) -> None:
    data = path.read_bytes()
    splitter = Splitter("cp437")
    jobs = splitter.feed(data, 0.0) + splitter.tick(100.0)
    assert [job.raw for job in jobs] == [data]
    assert jobs[0].ended_by == "cut"


def test_shared_fixtures_back_to_back_split_on_their_cuts() -> None:
    files = [p.read_bytes() for p in ALL_SHARED]
    splitter = Splitter("cp437")
    stream = b"".join(files)
    jobs = []
    for i in range(0, len(stream), 61):  # serial reads arrive in odd-sized pieces
        jobs += splitter.feed(stream[i:i + 61], 0.0)
    jobs += splitter.tick(100.0)
    assert [job.raw for job in jobs] == files


def test_character_encodings_decodes_each_pangram_with_its_esc_t_table() -> None:
    text = receipt_text(tokenize(shared("character-encodings.bin"), "cp437"))
    for pangram in (
        "Quizdeltagerne spiste jordbær med fløde, mens cirkusklovnen Wolther spillede på",
        "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg.",
        "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία",
        "El pingüino Wenceslao hizo kilómetros bajo exhaustiva lluvia y frío, añoraba",
        "Le cœur déçu mais l'âme plutôt naïve, Louÿs rêva de crapaüter en canoë",
        "Árvíztűrő tükörfúrógép.",
        "Kæmi ný öxi hér ykist þjófum nú bæði víl og ádrepa.",
        "Glāžšķūņa rūķīši dzērumā čiepj Baha koncertflīģeļu vākus.",
        "Pchnąć w tę łódź jeża lub ośm skrzyń fig.",
        "В чащах юга жил бы цитрус? Да, но фальшивый экземпляр!",  # noqa: RUF001
        "Pijamalı hasta, yağız şoföre çabucak güvendi.",  # noqa: RUF001
        "ｲﾛﾊﾆﾎﾍﾄ ﾁﾘﾇﾙｦ ﾜｶﾖﾀﾚｿ ﾂﾈﾅﾗﾑ",
    ):
        assert pangram in text


def test_text_size_has_no_stray_parameter_bytes() -> None:
    tokens = tokenize(shared("text-size.bin"), "cp437")
    text = receipt_text(tokens)
    assert "\x10" not in text and "\x11" not in text
    assert sum(1 for t in tokens if t.name == "GS !") >= 16


def test_formatting_gs_exclamation_does_not_become_dle() -> None:
    tokens = tokenize(shared("formatting.bin"), "cp437")
    assert not [t for t in tokens if t.name.startswith("DLE")]


def test_barcodes_yield_their_data_not_text() -> None:
    tokens = tokenize(shared("barcode.bin"), "cp437")
    barcodes = [t for t in tokens if t.name == "GS k"]
    assert len(barcodes) >= 9
    assert all(t.data for t in barcodes)
    assert b"".join(t.data for t in barcodes) not in receipt_text(tokens).encode()


def test_qr_payloads_are_extracted() -> None:
    found = codes(tokenize(shared("qr-code.bin"), "cp437"))
    assert b"Testing 123" in found


def test_images_are_blocks() -> None:
    for name, command in (("graphics.bin", "GS ("), ("bit-image.bin", "GS v"),
                          ("receipt-with-logo.bin", "GS (")):
        tokens = tokenize(shared(name), "cp437")
        assert any(t.kind is Kind.BLOCK and t.name == command and len(t.raw) > 100
                   for t in tokens)


def test_unifont_glyph_downloads_are_blocks() -> None:
    tokens = tokenize(shared("unifont-print-buffer.bin"), "cp437")
    assert any(t.name == "ESC &" and t.kind is Kind.BLOCK for t in tokens)


def test_receipt_with_logo_keeps_the_drawer_kick_after_the_cut() -> None:
    data = shared("receipt-with-logo.bin")
    splitter = Splitter("cp437")
    (job,) = splitter.feed(data, 0.0) + splitter.tick(100.0)
    assert [t.name for t in job.tokens][-2:] == ["GS V", "ESC p"]
    assert "ExampleMart" in job.text


def test_serial_capture_uses_cp858_and_keeps_the_trailing_lf() -> None:
    splitter = Splitter("cp437")
    data = shared("serial-com2-capture.bin")
    (job,) = splitter.feed(data, 0.0) + splitter.tick(100.0)
    assert job.raw == data and job.raw.endswith(b"\n")
    assert "für" in job.text


# -- own GB18030 fixtures ---------------------------------------------------------------


def test_chinese_mode_receipt_decodes_with_four_byte_characters() -> None:
    text = receipt_text(tokenize(own("gb18030-chinese-mode.bin"), "cp437"))
    assert "万达广场 星巴克" in text
    assert "𠮷野家套餐\t¥32.50" in text
    assert "会员: M12345678" in text


def test_raw_gb18030_without_fs_ampersand_decodes_by_port_default() -> None:
    data = own("gb18030-raw-qr-member.bin")
    assert b"\x1c&" not in data
    tokens = tokenize(data, "gb18030")
    text = receipt_text(tokens)
    assert "支付方式: 支付宝" in text
    assert "积分抵扣: 100分 (¥1.00)" in text
    assert codes(tokens) == [b"MBR:M87654321"]
    # The same bytes on a port configured for CP437 turn into mojibake, not an error.
    assert "支付宝" not in receipt_text(tokenize(data, "cp437"))


def test_fs_dot_leaves_chinese_mode() -> None:
    data = b"\x1c&" + "中文".encode("gb18030") + b"\x1c.\x1bt\x10" + "é".encode("cp1252")
    assert receipt_text(tokenize(data, "cp437")) == "中文é"


def test_esc_at_restores_the_port_default() -> None:
    data = b"\x1c.\x1bt\x10\xe9\x1b@" + "中".encode("gb18030")
    assert receipt_text(tokenize(data, "gb18030")) == "é中"


def test_a_character_split_across_reads_is_decoded_whole() -> None:
    data = "会员𠮷".encode("gb18030")
    tok = Tokenizer("gb18030")
    tokens = []
    for b in data:
        tokens += tok.feed(bytes([b]))
    tokens += tok.flush()
    assert "".join(t.text for t in tokens) == "会员𠮷"
    assert b"".join(t.raw for t in tokens) == data


def test_a_command_split_across_reads_waits_for_its_parameters() -> None:
    tok = Tokenizer("cp437")
    assert tok.feed(b"A\x1d") == [] or [t.text for t in tok.feed(b"")] == []
    tokens = tok.feed(b"!")
    assert not [t for t in tokens if t.kind is Kind.COMMAND]
    tokens = tok.feed(b"\x11B")
    assert [t.name for t in tokens if t.kind is Kind.COMMAND] == ["GS !"]


def test_an_unfinished_command_at_the_end_is_incomplete_not_text() -> None:
    tokens = tokenize(b"abc\x1d(k\x10\x00", "cp437")
    assert tokens[-1].kind is Kind.INCOMPLETE
    assert receipt_text(tokens) == "abc"


def test_unknown_commands_resynchronise_after_two_bytes() -> None:
    tokens = tokenize(b"\x1b\x01hello", "cp437")
    assert tokens[0].name.endswith("?")
    assert receipt_text(tokens) == "hello"


@pytest.mark.parametrize("form", [b"\x1dV\x00", b"\x1dV\x01", b"\x1dV0", b"\x1dV1",
                                  b"\x1dVA\x03", b"\x1dVB\x00", b"\x1dVa\x05", b"\x1dVb\x00",
                                  b"\x1dVg\x10", b"\x1dVh\x10", b"\x1bi", b"\x1bm"])
def test_every_cut_form_ends_a_receipt(form: bytes) -> None:
    splitter = Splitter("cp437")
    stream = b"\x1b@one\n" + form + b"\n\x1bp\x00\x19\xfatwo\n" + form
    jobs = splitter.feed(stream, 0.0) + splitter.tick(100.0)
    assert [j.text.strip() for j in jobs] == ["one", "two"]
    assert jobs[0].raw == b"\x1b@one\n" + form + b"\n\x1bp\x00\x19\xfa"


def test_esc_at_starts_the_next_job_when_there_is_no_cut() -> None:
    splitter = Splitter("cp437")
    jobs = splitter.feed(b"\x1b@one\n\x1b@two\n", 0.0)
    assert [j.text for j in jobs] == ["one\n"]
    assert jobs[0].ended_by == "init"


def test_a_job_without_cut_ends_at_the_idle_gap() -> None:
    data = own("gb18030-no-cut.bin")
    splitter = Splitter("gb18030", idle_gap=5.0)
    assert splitter.feed(data, 10.0) == []
    assert splitter.tick(14.0) == []
    (job,) = splitter.tick(15.5)
    assert job.ended_by == "idle" and job.raw == data
    assert "美式咖啡" in job.text


def test_size_guard_ends_a_runaway_job() -> None:
    splitter = Splitter("cp437", max_bytes=1000)
    jobs = splitter.feed(b"x" * 600 + b"\n", 0.0) + splitter.feed(b"y" * 600 + b"\n", 0.1)
    assert jobs and jobs[0].ended_by == "size"
    assert sum(len(j.raw) for j in jobs) + splitter.pending == 1202


def test_structure_mode_finds_the_same_receipts_and_their_text() -> None:
    stream = own("gb18030-chinese-mode.bin") + own("gb18030-raw-qr-member.bin")
    splitter = Splitter("gb18030")
    jobs = splitter.feed(stream, 0.0) + splitter.tick(100.0)
    assert [j.raw for j in jobs] == [own("gb18030-chinese-mode.bin"),
                                     own("gb18030-raw-qr-member.bin")]
    assert "𠮷野家套餐\t¥32.50" in jobs[0].text
    assert jobs[1].codes == [b"MBR:M87654321"]
    structure = Tokenizer("gb18030", decode=False).feed(stream)
    assert all(t.text == "" for t in structure)
    assert len(structure) < len(tokenize(stream, "gb18030"))


def test_formatting_after_a_cut_stays_with_the_receipt() -> None:
    splitter = Splitter("cp437")
    stream = b"\x1b@one\n\x1dV\x00\n\x1ba\x00\x1b@two\n\x1dV\x00"
    jobs = splitter.feed(stream, 0.0) + splitter.tick(100.0)
    assert [j.raw for j in jobs] == [b"\x1b@one\n\x1dV\x00\n\x1ba\x00",
                                     b"\x1b@two\n\x1dV\x00"]
