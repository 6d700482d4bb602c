-- An artifact's digest says its algorithm: workers hash with BLAKE3 now (`blake3:HEX`); what was
-- kept before is SHA-256 (`sha256:HEX`).
ALTER TABLE artifacts RENAME COLUMN sha256 TO digest;
UPDATE artifacts SET digest = 'sha256:' || digest WHERE instr(digest, ':') = 0;
