"""Wrong answers to notebook 06's exercises (sparse attention)."""

from __future__ import annotations

import math

import torch

from attn_course import sparse
from tests.corpus import Wrong

# --- sliding_window_mask ---------------------------------------------------------------------


def _validate(**sizes):
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _window(condition):
    """A mask answer that validates like the solution and differs only in ``condition``."""

    def sliding_window_mask(n, window):
        _validate(n=n, window=window)
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        return condition(i, j, window)

    return sliding_window_mask


def _window_unchecked(n, window):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (j <= i) & (i - j < window)


def _window_vague_error(n, window):
    if n < 1 or window < 1:
        raise ValueError("bad input")
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (j <= i) & (i - j < window)


def _window_int_mask(n, window):
    return _window(lambda i, j, w: (j <= i) & (i - j < w))(n, window).int()


# --- longformer_mask ---------------------------------------------------------------------------


def _longformer(n, radius, global_tokens, *, band=None, rows=True, columns=True, by_count=False):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    mask = (i - j).abs() <= radius if band is None else band(i, j, radius)
    tokens = range(len(global_tokens)) if by_count else global_tokens
    for token in tokens:
        if rows:
            mask[token, :] = True
        if columns:
            mask[:, token] = True
    return mask


def _longformer_tensor_index(n, radius, global_tokens):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    is_global = torch.zeros(n, dtype=torch.bool)
    is_global[torch.tensor(global_tokens)] = True  # a float tensor when the list is empty
    return ((i - j).abs() <= radius) | is_global[:, None] | is_global[None, :]


# --- window_tile_count -------------------------------------------------------------------------


def _tiles(per_block, *, blocks=math.ceil, validate=True):
    def window_tile_count(n, window, block):
        if validate:
            _validate(n=n, window=window, block=block)
        return sum(per_block(query_block, window, block)
                   for query_block in range(blocks(n / block)))  # fmt: skip

    return window_tile_count


def _right_per_block(query_block, window, block):
    first_key = max(0, query_block * block - window + 1)
    return query_block - first_key // block + 1


def _tiles_from_dense_mask(n, window, block):
    _validate(n=n, window=window, block=block)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    mask = (j <= i) & (i - j < window)
    t = math.ceil(n / block)
    padded = torch.zeros(t * block, t * block, dtype=torch.bool)
    padded[:n, :n] = mask
    return int(padded.reshape(t, block, t, block).any(3).any(1).sum())


def _tiles_float(n, window, block):
    _validate(n=n, window=window, block=block)
    t = math.ceil(n / block)
    c = 1 + math.ceil((window - 1) / block)
    return t * (t + 1) / 2 if t <= c else c * t - c * (c - 1) / 2


# --- global_window_tile_count ----------------------------------------------------------------


def _global_tiles(n, radius, global_tokens, block, *, rows=True, columns=True, union=True,
                  per_token=False, reach=None, blocks=math.ceil):  # fmt: skip
    t = blocks(n / block)
    global_blocks = [g // block for g in global_tokens if g // block < t]
    if not per_token:
        global_blocks = sorted(set(global_blocks))
    total = 0
    for query_block in range(t):
        if rows and query_block in global_blocks:
            total += t
            continue
        if reach is None:
            first = max(0, query_block * block - radius) // block
            last = min(n - 1, query_block * block + block - 1 + radius) // block
        else:
            first, last = reach(query_block, radius, block, n)
        last = min(last, t - 1)
        total += last - first + 1
        if columns:
            total += sum(1 for b in global_blocks if not union or not first <= b <= last)
    return total


def _global_tiles_dense(n, radius, global_tokens, block):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    mask = (i - j).abs() <= radius
    for token in global_tokens:
        mask[token, :] = True
        mask[:, token] = True
    t = math.ceil(n / block)
    padded = torch.zeros(t * block, t * block, dtype=torch.bool)
    padded[:n, :n] = mask
    return int(padded.reshape(t, block, t, block).any(3).any(1).sum())


def _reach_floor(query_block, radius, block, n):
    # "radius // block blocks on each side": misses the blocks the block's own rows reach
    return max(0, query_block - radius // block), query_block + radius // block


def _reach_own_width_forgotten(query_block, radius, block, n):
    return max(0, query_block * block - radius) // block, min(n - 1, query_block * block
                                                              + radius) // block


def _reach_plus_one(query_block, radius, block, n):
    return max(0, query_block - radius // block - 1), query_block + radius // block + 1


WRONG = {
    "sliding_window_mask": [
        Wrong("one key too wide", _window(lambda i, j, w: (j <= i) & (i - j <= w)),
              "one key too wide"),
        Wrong("looks into the future", _window(lambda i, j, w: (i - j).abs() < w), "future"),
        Wrong("diagonal left out", _window(lambda i, j, w: (j < i) & (i - j < w)),
              "too narrow"),
        Wrong("window - 1 keys", _window(lambda i, j, w: (j <= i) & (i - j < w - 1)),
              "too narrow"),
        Wrong("rows and columns swapped", _window(lambda i, j, w: (j >= i) & (j - i < w)),
              "rows are queries"),
        Wrong("no validation", _window_unchecked, "ValueError"),
        Wrong("an error that names nothing", _window_vague_error, "names the parameter"),
        Wrong("an int mask", _window_int_mask, "torch.bool"),
        Wrong("the package's pattern", lambda n, w: sparse.sliding_window_pattern(n, w)
              .dense_mask(), "sparse.sliding_window_pattern"),
        Wrong("local & causal patterns", lambda n, w: (sparse.local_pattern(n, w - 1)
              & sparse.causal_pattern(n)).dense_mask(), "sparse.local_pattern"),
    ],
    "longformer_mask": [
        Wrong("globals only seen", lambda n, r, g: _longformer(n, r, g, rows=False),
              "must also *see*"),
        Wrong("globals only see", lambda n, r, g: _longformer(n, r, g, columns=False),
              "must also *be seen*"),
        Wrong("no global tokens", lambda n, r, g: _longformer(n, r, g, rows=False,
                                                              columns=False),
              "global tokens are missing"),
        Wrong("one-sided band", lambda n, r, g: _longformer(
            n, r, g, band=lambda i, j, r: (i - j >= 0) & (i - j <= r)), "both sides"),
        Wrong("band one too narrow", lambda n, r, g: _longformer(
            n, r, g, band=lambda i, j, r: (i - j).abs() < r), "one too narrow"),
        Wrong("band one too wide", lambda n, r, g: _longformer(
            n, r, g, band=lambda i, j, r: (i - j).abs() <= r + 1), "one too wide"),
        Wrong("global_tokens read as a count", lambda n, r, g: _longformer(n, r, g,
                                                                           by_count=True),
              "token *indices*"),
        Wrong("torch.tensor of an empty list", _longformer_tensor_index, "may be empty"),
        Wrong("an int mask", lambda n, r, g: _longformer(n, r, g).long(), "torch.bool"),
        Wrong("the package's pattern", lambda n, r, g: sparse.longformer_pattern(n, r, g)
              .dense_mask(), "sparse.longformer_pattern"),
    ],
    "window_tile_count": [
        Wrong("every causal tile", _tiles(lambda b, w, blk: b + 1), "every causal tile"),
        Wrong("ceil(window / block)", _tiles(lambda b, w, blk: min(b + 1,
                                                                   1 + math.ceil(w / blk))),
              "(window − 1) tokens back"),
        Wrong("floor for the reach", _tiles(lambda b, w, blk: min(b + 1, 1 + (w - 1) // blk)),
              "use ceil"),
        Wrong("no min(I + 1, c)", _tiles(lambda b, w, blk: 1 + math.ceil((w - 1) / blk)),
              "fewer key blocks"),
        Wrong("floor for the number of blocks", _tiles(_right_per_block, blocks=math.floor),
              "may be short"),
        Wrong("builds the dense mask", _tiles_from_dense_mask, "don't build the n × n mask"),
        Wrong("a float count", _tiles_float, "an int"),
        Wrong("no validation", _tiles(_right_per_block, validate=False), "ValueError"),
        Wrong("the package's closed form", sparse.sliding_window_tiles,
              "sparse.sliding_window_tiles"),
        Wrong("the package's layout", lambda n, w, b: sparse.sliding_window_pattern(n, w)
              .layout(b).visited_tiles, "sparse.sliding_window_pattern"),
    ],
    "global_window_tile_count": [
        Wrong("global rows forgotten", lambda n, r, g, b: _global_tiles(n, r, g, b, rows=False),
              "rows or columns are missing"),
        Wrong("global columns forgotten", lambda n, r, g, b: _global_tiles(n, r, g, b,
                                                                           columns=False),
              "rows or columns are missing"),
        Wrong("globals forgotten", lambda n, r, g, b: _global_tiles(n, r, g, b, rows=False,
                                                                    columns=False),
              "global tokens are missing"),
        Wrong("band and global columns both counted", lambda n, r, g, b: _global_tiles(
            n, r, g, b, union=False), "counted twice"),
        Wrong("global tokens, not blocks", lambda n, r, g, b: _global_tiles(
            n, r, g, b, per_token=True), "same block"),
        Wrong("band one block too narrow", lambda n, r, g, b: _global_tiles(
            n, r, g, b, reach=_reach_floor), "too narrow"),
        Wrong("band forgets the block's own rows", lambda n, r, g, b: _global_tiles(
            n, r, g, b, reach=_reach_own_width_forgotten), "too narrow"),
        Wrong("band one block too wide", lambda n, r, g, b: _global_tiles(
            n, r, g, b, reach=_reach_plus_one), "too wide"),
        Wrong("floor for the number of blocks", lambda n, r, g, b: _global_tiles(
            n, r, g, b, blocks=math.floor), "may be short"),
        Wrong("builds the dense mask", _global_tiles_dense, "don't build the n × n mask"),
        Wrong("the package's layout", lambda n, r, g, b: sparse.longformer_pattern(n, r, g)
              .layout(b).visited_tiles, "sparse.longformer_pattern"),
    ],
}

RIGHT = {
    "sliding_window_mask": [
        lambda n, w: (_validate(n=n, window=w), torch.ones(n, n, dtype=torch.bool).tril()
                      & ~torch.ones(n, n, dtype=torch.bool).tril(-w))[1],
    ],
    "longformer_mask": [lambda n, r, g: _longformer(n, r, g)],
    "window_tile_count": [
        # the closed form of the notebook
        lambda n, w, b: (_validate(n=n, window=w, block=b), (lambda t, c: t * (t + 1) // 2
                         if t <= c else c * t - c * (c - 1) // 2)(-(-n // b),
                                                                  1 + -(-(w - 1) // b)))[1],
    ],
    "global_window_tile_count": [_global_tiles],
}
