"""Which input line first claimed each identity on the target, so a later line with the same
identity fails as a duplicate instead of overwriting the first one (and flip-flopping on every
resync). Kept on disk: memory stays flat over millions of items."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile

# Claims written to the file at once: a statement per line cost more than judging the line.
WRITE_BATCH = 4096
# One bit per identity hash in front of the file: a clear bit proves the identity is new
# without a query. The filter starts at 128 KiB and grows (x4, rebuilt from the file) while
# more than one bit in 64 is set, up to 2 MiB, so memory stays flat: at a million identities
# one new one in 17 finds its bit set by another and asks the file.
FILTER_BITS = 1 << 20
MAX_FILTER_BITS = 1 << 24
FILL = 64


class IdentityIndex:
    """Identities are stored as 64-bit hashes: at a million items the chance that two different
    identities collide is about 3 in 100 million."""

    def __init__(
        self, *, filter_bits: int = FILTER_BITS, max_filter_bits: int = MAX_FILTER_BITS
    ) -> None:
        for bits in (filter_bits, max_filter_bits):
            if bits < 8 or bits & (bits - 1):
                raise ValueError("filter sizes must be powers of two, at least 8")
        handle, self._path = tempfile.mkstemp(prefix="bulksync-identities-", suffix=".sqlite")
        os.close(handle)
        self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        # A scratch file, rebuilt by every run: no journal, no fsync, one long transaction.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        # The kind is hashed with the identity, so the hash alone is the row id: an integer
        # key's B-tree takes a million inserts faster than a (kind, hash) one.
        self._db.execute("CREATE TABLE ids (h INTEGER PRIMARY KEY, line INTEGER NOT NULL)")
        self._db.execute("BEGIN")
        self._mask = filter_bits - 1
        self._filter = bytearray(filter_bits // 8)
        self._max_bits = max(filter_bits, max_filter_bits)
        self._grow_at = filter_bits // FILL
        self._claims = 0
        self._unwritten: list[tuple[int, int]] = []

    def claim(self, kind: str, identity: str, line: int) -> int | None:
        """None for the first line with this identity, else the line that claimed it first."""
        text = f"{kind}\0{identity}".encode("utf-8", "surrogatepass")
        h = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)
        bit = h & self._mask
        byte, flag = bit >> 3, 1 << (bit & 7)
        if not self._filter[byte] & flag:
            self._filter[byte] |= flag
            self._unwritten.append((h, line))
            self._claims += 1
            if len(self._unwritten) >= WRITE_BATCH:
                self._write()
            if self._claims > self._grow_at:
                self._grow()
            return None
        self._write()  # the first claim may be among those not yet written
        cursor = self._db.execute(
            "INSERT INTO ids (h, line) VALUES (?, ?) ON CONFLICT DO NOTHING", (h, line)
        )
        if cursor.rowcount == 1:
            self._claims += 1
            return None
        return int(self._db.execute("SELECT line FROM ids WHERE h = ?", (h,)).fetchone()[0])

    def _write(self) -> None:
        if self._unwritten:
            # In key order, each insert lands next to the one before: fewer pages touched.
            self._unwritten.sort()
            self._db.executemany(
                "INSERT INTO ids (h, line) VALUES (?, ?) ON CONFLICT DO NOTHING", self._unwritten
            )
            self._unwritten.clear()

    def _grow(self) -> None:
        bits = len(self._filter) * 8
        if bits >= self._max_bits:
            self._grow_at = self._claims * 2  # as full as it gets: the file answers more
            return
        bits = min(bits * 4, self._max_bits)
        self._write()
        self._mask = mask = bits - 1
        self._filter = bits_set = bytearray(bits // 8)
        for (h,) in self._db.execute("SELECT h FROM ids"):
            bit = h & mask
            bits_set[bit >> 3] |= 1 << (bit & 7)
        self._grow_at = bits // FILL

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
