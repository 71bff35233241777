-- A member's tier counts the spend recorded under the provisional ids merged into it: the
-- tier check after every sale looks them up by the member.
CREATE INDEX member_aliases_member ON member_aliases (member_id);
