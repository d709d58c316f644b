"""Near-duplicate video from per-second perceptual hashes: re-encodes, resizes, other
containers and trimmed copies, with the time offset of one inside the other.

A file's signature is its sequence of 64-bit dHashes, one per second (frame_stats: the hash of
the second's mean picture, from the frames scene detection decodes). Comparing one frame per
video (as Immich does) matches different clips of the same place; here two files match only
when many seconds agree in order, at one time offset.

A cropped copy (a reframe, a stabiliser's crop) shows the middle of the original's picture:
its whole-picture hashes are compared with the original's middle hashes (frame_stats'
`CENTRE_CROP`, 10 % off each side: crops of about 8-12 % a side agree), kind `cropped`.

Candidates come from locality-sensitive hashing: each of `TABLES` tables keys a hash by
`KEY_BITS` fixed random bit positions, so hashes a few bits apart share a key in some table
and unrelated ones rarely do. Each shared key votes for (file a, file b, lag); the best lag of
each pair is then checked second by second (Hamming distance) over the overlap. The cost
grows with the number of seconds, not with the square of the number of files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

TABLES = 12
KEY_BITS = 22
CROP_KEY_BITS = 26  # copies against middles (see _cross_votes)
MAX_BUCKET = 48  # a key this many seconds share is a common picture (black, a slate): no vote
MIN_VOTES = 2
MAX_DISTANCE = 12  # bits: a second "agrees" at or below this (unrelated pictures: about 32)
MIN_AGREE = 0.7  # share of the overlap's seconds that must agree
MIN_OVERLAP_S = 4  # seconds
COVER = 0.9  # a file at least this much inside the overlap counts as all of it
_SEED = 16


@dataclass(frozen=True)
class Signature:
    checksum: str
    hashes: np.ndarray  # uint64 per second, from second 0
    valid: np.ndarray  # bool per second: a picture with detail was hashed
    centre: Signature | None = None  # the same of the picture's middle, where hashed

    @classmethod
    def from_seconds(
        cls,
        checksum: str,
        seconds: Sequence[int],
        hashes: Sequence,
        centre: Sequence | None = None,
    ) -> Signature:
        """From (second, signed 64-bit dHash or None) pairs, as table timeline_frames holds."""

        def arrays(values: Sequence) -> tuple[np.ndarray, np.ndarray]:
            known = np.array([h is not None for h in values], bool)
            return np.array([h if h is not None else 0 for h in values], np.int64), known

        middle = arrays(centre) if centre is not None else None
        return cls.from_arrays(checksum, np.asarray(seconds, np.int64), *arrays(hashes), middle)

    @classmethod
    def from_arrays(
        cls,
        checksum: str,
        seconds: np.ndarray,
        signed: np.ndarray,
        known: np.ndarray,
        centre: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Signature:
        """`centre`: (signed, known) of the middle hashes, on the same seconds."""
        seconds, known = np.asarray(seconds, np.int64), np.asarray(known, bool)
        length = int(seconds.max()) + 1 if len(seconds) else 0
        values = np.zeros(length, np.uint64)
        valid = np.zeros(length, bool)
        values[seconds[known]] = np.asarray(signed, np.int64)[known].view(np.uint64)
        valid[seconds[known]] = True
        bits = np.bitwise_count(values)
        valid &= (bits > 4) & (bits < 60)  # flat pictures hash to (nearly) all 0s or 1s
        middle = None
        if centre is not None and np.asarray(centre[1], bool).any():
            middle = cls.from_arrays(checksum, seconds, *centre)
        return cls(checksum, values, valid, middle)


@dataclass(frozen=True)
class Match:
    checksum_a: str  # the longer file (or, as long, the first by checksum)
    checksum_b: str
    kind: str  # same | contained (b is a trimmed copy inside a) | overlap | cropped (b shows
    # the middle of a's picture)
    score: float  # 1 - mean Hamming distance / 32 over the overlap: 1 identical, ~0 unrelated
    offset_s: float  # b's time 0 is at a's offset_s
    overlap_s: float
    agree: float  # share of the overlap's seconds within MAX_DISTANCE


def _positions(bits: int = KEY_BITS) -> list[np.ndarray]:
    """Each table's `bits` bit positions, the same on every run."""
    rng = np.random.default_rng(_SEED)
    return [rng.choice(64, bits, replace=False).astype(np.uint64) for _ in range(TABLES)]


def _entries(signatures: Sequence[Signature]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(file, second, hash) of every valid second."""
    files = np.concatenate([np.full(s.valid.sum(), i, np.int64) for i, s in enumerate(signatures)])
    seconds = np.concatenate([np.flatnonzero(s.valid) for s in signatures]).astype(np.int64)
    return files, seconds, np.concatenate([s.hashes[s.valid] for s in signatures])


def _key(hashes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Bit j of the key is bit positions[j] of the hash: looked up a byte at a time (eight
    gathers instead of one pass per bit)."""
    values = np.arange(256, dtype=np.int64)
    key = np.zeros(len(hashes), np.int64)
    octets = np.ascontiguousarray(hashes, dtype="<u8").view(np.uint8).reshape(-1, 8)
    for byte in range(8):
        table = np.zeros(256, np.int64)
        for j, pos in enumerate(int(p) for p in positions):
            if pos // 8 == byte:
                table |= ((values >> (pos % 8)) & 1) << j
        if table.any():
            key |= table[octets[:, byte]]
    return key


def _votes(signatures: Sequence[Signature], span: int, shift: int) -> np.ndarray:
    """One cell per shared key: (file a · files + file b) · span + lag + shift, a < b, with
    lag = second in a - second in b (8 bytes a vote; one table's keys at a time)."""
    files, seconds, hashes = _entries(signatures)
    out = []
    count = len(signatures)
    for positions in _positions():
        keys = _key(hashes, positions)
        order = np.argsort(keys)
        keys, t_files, t_seconds = keys[order], files[order], seconds[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        sizes = np.diff(np.r_[starts, len(keys)])
        for size in np.unique(sizes):
            if size < 2 or size > MAX_BUCKET:
                continue
            first = starts[sizes == size]
            rows = first[:, None] + np.arange(size)[None, :]
            i, j = np.triu_indices(size, 1)
            fa, fb = t_files[rows[:, i]].reshape(-1), t_files[rows[:, j]].reshape(-1)
            sa, sb = t_seconds[rows[:, i]].reshape(-1), t_seconds[rows[:, j]].reshape(-1)
            other = fa != fb
            fa, fb, sa, sb = fa[other], fb[other], sa[other], sb[other]
            swap = fa > fb
            pair = np.where(swap, fb * count + fa, fa * count + fb)
            out.append(pair * span + np.where(swap, sb - sa, sa - sb) + shift)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _cross_votes(
    copies: Sequence[Signature], originals: Sequence[Signature], span: int, shift: int
) -> np.ndarray:
    """One cell per key a copy's second shares with an original's: (copy · originals +
    original) · span + lag + shift, lag = second in the copy - second in the original. Keys
    of `CROP_KEY_BITS`: a crop's whole picture is close to the original's middle (3 bits on
    average), and longer keys keep chance collisions between the two sets few."""
    c_files, c_seconds, c_hashes = _entries(copies)
    o_files, o_seconds, o_hashes = _entries(originals)
    out = []
    for positions in _positions(CROP_KEY_BITS):
        o_keys = _key(o_hashes, positions)
        order = np.argsort(o_keys)
        o_keys, t_files, t_seconds = o_keys[order], o_files[order], o_seconds[order]
        c_keys = _key(c_hashes, positions)
        mine = np.argsort(c_keys)  # sorted needles: searchsorted walks memory in order
        c_keys, m_files, m_seconds = c_keys[mine], c_files[mine], c_seconds[mine]
        lo, hi = np.searchsorted(o_keys, c_keys), np.searchsorted(o_keys, c_keys, "right")
        size = hi - lo
        voting = np.flatnonzero((size > 0) & (size <= MAX_BUCKET))
        repeat = size[voting]
        which = np.repeat(voting, repeat)
        at = np.repeat(lo[voting] - np.cumsum(repeat) + repeat, repeat) + np.arange(repeat.sum())
        pair = m_files[which] * len(originals) + t_files[at]
        out.append(pair * span + (m_seconds[which] - t_seconds[at]) + shift)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _compare(a: Signature, b: Signature, lag: int) -> tuple[float, float, int]:
    """(mean distance, share agreeing, seconds compared) of a's second s against b's s - lag."""
    lo, hi = max(0, lag), min(len(a.hashes), len(b.hashes) + lag)
    if hi <= lo:
        return 64.0, 0.0, 0
    sa, sb = slice(lo, hi), slice(lo - lag, hi - lag)
    both = a.valid[sa] & b.valid[sb]
    if not both.any():
        return 64.0, 0.0, 0
    distance = np.bitwise_count(a.hashes[sa][both] ^ b.hashes[sb][both]).astype(np.float64)
    return float(distance.mean()), float((distance <= MAX_DISTANCE).mean()), int(both.sum())


def _match(a: Signature, b: Signature, lag: int) -> Match | None:
    best = min(((_compare(a, b, lag + d), lag + d) for d in (-1, 0, 1)), key=lambda r: r[0][0])
    (mean, agree, compared), lag = best
    if compared < MIN_OVERLAP_S or agree < MIN_AGREE:
        return None
    # sub-second: a second's mean picture drifts linearly away from the true offset
    before, after = _compare(a, b, lag - 1)[0], _compare(a, b, lag + 1)[0]
    slope = max(before, after) - mean
    offset = lag + ((before - after) / (2 * slope) if slope > 0 else 0.0)
    overlap = min(len(a.hashes), len(b.hashes) + lag) - max(0, lag)
    a_in, b_in = overlap / max(len(a.hashes), 1), overlap / max(len(b.hashes), 1)
    if a_in >= COVER and b_in >= COVER:
        kind = "same"
    elif b_in >= COVER:
        kind = "contained"
    else:
        kind = "overlap"
    score = round(max(0.0, 1.0 - mean / 32.0), 4)
    return Match(a.checksum, b.checksum, kind, score, round(offset, 2), float(overlap), agree)


def _neighbour(cells: np.ndarray, counts: np.ndarray, wanted: np.ndarray, span: int) -> np.ndarray:
    """The count of each `wanted` cell of the same pair (0 where none) in sorted `cells`."""
    at = np.clip(np.searchsorted(cells, wanted), 0, len(cells) - 1)
    return np.where((cells[at] == wanted) & (cells[at] // span == cells // span), counts[at], 0)


def _lags(votes: np.ndarray, span: int, shift: int, count: int) -> list[tuple[int, int, int]]:
    """(a, b, lag) of each pair with enough votes at its best lag, from cells
    (a · count + b) · span + lag + shift."""
    cells, counts = np.unique(votes, return_counts=True)
    # a trim at a fraction of a second splits its votes between two neighbouring lags
    near = _neighbour(cells, counts, cells - 1, span) + _neighbour(cells, counts, cells + 1, span)
    counts = counts + near
    kept = counts >= MIN_VOTES
    cells, counts = cells[kept], counts[kept]
    pair, lag_of = cells // span, cells % span - shift
    order = np.lexsort((-counts, pair))  # per pair, its most voted lag first
    pair, lag_of, counts = pair[order], lag_of[order], counts[order]
    head = np.r_[True, pair[1:] != pair[:-1]] & (counts >= MIN_VOTES)
    return [
        (int(p) // count, int(p) % count, int(lag))
        for p, lag in zip(pair[head], lag_of[head], strict=True)
    ]


def find_near_duplicates(signatures: Sequence[Signature]) -> list[Match]:
    """Every pair of files whose pictures agree second by second at one offset, and every
    cropped copy (its whole picture agreeing with another file's middle)."""
    signatures = [s for s in signatures if s.valid.sum() >= MIN_OVERLAP_S]
    if len(signatures) < 2:
        return []
    matches: dict[frozenset[str], Match] = {}
    shift = max(len(s.hashes) for s in signatures)  # lags lie within ±(longest - 1)
    span = 2 * shift + 1
    votes = _votes(signatures, span, shift)
    for i, j, best in _lags(votes, span, shift, len(signatures)):
        a, b = signatures[i], signatures[j]
        flip = len(b.hashes) > len(a.hashes) or (
            len(b.hashes) == len(a.hashes) and b.checksum < a.checksum
        )
        found = _match(b, a, -best) if flip else _match(a, b, best)
        if found is not None:
            matches[frozenset((a.checksum, b.checksum))] = found
    owners = [
        i
        for i, s in enumerate(signatures)
        if s.centre is not None and s.centre.valid.sum() >= MIN_OVERLAP_S
    ]
    if owners:
        middles = [signatures[i].centre for i in owners]
        votes = _cross_votes(signatures, middles, span, shift)
        for i, j, lag in _lags(votes, span, shift, len(middles)):
            copy, original = signatures[i], middles[j]  # lag: second in copy - in original
            if copy.checksum == original.checksum:
                continue  # a file's own middle
            if frozenset((copy.checksum, original.checksum)) in matches:
                continue  # the whole pictures agree already
            found = _match(original, copy, -lag)
            if found is not None:
                found = replace(found, kind="cropped")
                matches[frozenset((copy.checksum, original.checksum))] = found
    return sorted(matches.values(), key=lambda m: (m.checksum_a, m.checksum_b))


def groups(matches: Sequence[Match]) -> list[list[str]]:
    """Connected files (union-find), each group sorted, largest groups first."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for m in matches:
        ra, rb = root(m.checksum_a), root(m.checksum_b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = {}
    for x in list(parent):
        members.setdefault(root(x), []).append(x)
    return sorted((sorted(g) for g in members.values()), key=lambda g: (-len(g), g[0]))
