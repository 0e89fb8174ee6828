"""Wrong answers to notebook 04's exercises (FlashAttention in Triton).

The kernel exercise's wrong answers are real ``@triton.jit`` kernels (Triton reads a
kernel's source from its file), each the notebook's kernel with one typical bug. The
parts of the kernel the notebook gives (loading q, one key block's masked scores, the
final store) are shared ``@triton.jit`` helpers below, so each variant shows only what
it changes.
"""

from __future__ import annotations

import math

from attn_course import cost, kernels  # noqa: F401 (attn_course: sets the Triton mode first)

import triton  # isort: skip
import triton.language as tl  # isort: skip

from tests.corpus import Wrong  # isort: skip

# --- causal_kv_blocks ----------------------------------------------------------------------


def _blocks_float(i, block_m, block_n):
    return ((i + 1) * block_m + block_n - 1) / block_n // 1  # a float: 4.0, not 4


# --- kv_head_for ---------------------------------------------------------------------------


def _head_float(q_head, heads, kv_heads):
    return q_head / (heads // kv_heads)  # 1.25, not 1


# --- attention_tflops ------------------------------------------------------------------------


def _tflops(batch, heads, n, head_dim, causal, ms, *, matmuls=2, halve="causal", per_ms=1e-3,
            tera=1e12, triangle=False):  # fmt: skip
    pairs = n * (n + 1) / 2 if causal and triangle else n * n
    flops = 2 * matmuls * batch * heads * pairs * head_dim
    if (halve == "causal" and causal and not triangle) or halve == "always":
        flops /= 2
    return flops / (ms * per_ms) / tera


def _tflops_heads_twice(batch, heads, n, head_dim, causal, ms):
    d_model = heads * head_dim
    flops = 4 * batch * heads * n * n * d_model / (2 if causal else 1)
    return flops / (ms * 1e-3) / 1e12


def _tflops_course(batch, heads, n, head_dim, causal, ms):
    return cost.tflops_per_s(cost.attention_flops(batch, heads, n, head_dim, causal=causal), ms)


def _tflops_cost(batch, heads, n, head_dim, causal, ms):
    flops = cost.attention_matmul_flops(n, heads * head_dim, causal=causal, batch=batch)
    return flops / (ms * 1e-3) / 1e12


# --- flash_inner_loop: the parts of the kernel the notebook gives --------------------------------


@triton.jit
def _load_q(Q, n, BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr):
    block_index = tl.program_id(0)
    head = tl.program_id(1)
    base = head * n * HEAD_DIM
    rows = block_index * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(Q + base + rows[:, None] * HEAD_DIM + dims[None, :], mask=rows[:, None] < n,
                other=0.0)  # fmt: skip
    return block_index, base, rows, dims, q


@triton.jit
def _stop(block_index, n, CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr):
    stop = n
    if CAUSAL:
        stop = tl.minimum((block_index + 1) * BLOCK_M, n)
    return stop


@triton.jit
def _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL: tl.constexpr,
               BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr):  # fmt: skip
    cols = start_n + tl.arange(0, BLOCK_N)
    k = tl.load(K + base + cols[:, None] * HEAD_DIM + dims[None, :], mask=cols[:, None] < n,
                other=0.0)  # fmt: skip
    v = tl.load(V + base + cols[:, None] * HEAD_DIM + dims[None, :], mask=cols[:, None] < n,
                other=0.0)  # fmt: skip
    s = tl.dot(q, tl.trans(k)) * qk_scale_log2
    visible = cols[None, :] < n
    if CAUSAL:
        visible = visible & (cols[None, :] <= rows[:, None])
    s = tl.where(visible, s, float("-inf"))
    return s, v


@triton.jit
def _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM: tl.constexpr):
    out = acc / l_i[:, None]
    tl.store(Out + base + rows[:, None] * HEAD_DIM + dims[None, :], out, mask=rows[:, None] < n)


# --- flash_inner_loop: right answers ---------------------------------------------------------


@triton.jit
def _guarded_update(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    """Right, in the style of attn_course/kernels/flash.py: a -inf guard on the shift, and
    acc passed to tl.dot as its accumulator."""
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(s - shift[:, None])
        alpha = tl.exp2(m_i - shift)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = tl.dot(p, v, acc * alpha[:, None])
        m_i = m_new
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


@triton.jit
def STUB_KERNEL(  # noqa: N802 - the notebook's stub: not a wrong answer, not attempted
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # noqa: F841
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        # YOUR CODE HERE: delete the `raise` line below and write your solution
        raise NotImplementedError()
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


# --- flash_inner_loop: wrong updates -----------------------------------------------------------


@triton.jit
def _no_acc_rescale(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc + tl.dot(p, v)  # the old acc is not rescaled
        m_i = m_new
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


@triton.jit
def _no_sum_rescale(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i + tl.sum(p, 1)  # the old sum is not rescaled
        acc = acc * alpha[:, None] + tl.dot(p, v)
        m_i = m_new
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


@triton.jit
def _alpha_after_update(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.exp2(s - m_new[:, None])
        m_i = m_new
        alpha = tl.exp2(m_i - m_new)  # always 1: m_i was overwritten first
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p, v)
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


@triton.jit
def _max_never_stored(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p, v)  # ... and m_i = m_new is missing
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


@triton.jit
def _natural_exp(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)  # exp of base-2 scores
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p, v)
        m_i = m_new
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


@triton.jit
def _sum_down_columns(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 0)  # sums down the columns (over the queries)
        acc = acc * alpha[:, None] + tl.dot(p, v)
        m_i = m_new
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


@triton.jit
def _normalised_in_loop(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_new = l_i * alpha + tl.sum(p, 1)
        # notebook 03's normalised form; but the kernel divides by l_i again after the loop
        acc = acc * (alpha * l_i / l_new)[:, None] + tl.dot(p, v) / l_new[:, None]
        l_i = l_new
        m_i = m_new
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


@triton.jit
def _old_max_in_p(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_i[:, None])  # the old maximum: -inf in the first block
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p, v)
        m_i = m_new
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


@triton.jit
def _no_max_subtracted(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL, BLOCK_N,
                          HEAD_DIM)  # fmt: skip
        p = tl.exp2(s)  # right in exact arithmetic, but 2^s overflows float32 for large s
        l_i = l_i + tl.sum(p, 1)
        acc = acc + tl.dot(p, v)
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


# --- flash_inner_loop: the given parts changed -------------------------------------------------

# Which given part a kernel below gets wrong (a constexpr, so each is compiled on its own).
NO_CAUSAL_MASK, DIAGONAL_HIDDEN, NO_PADDING_MASK, KEY_ROWS_ONE_APART = 1, 2, 3, 4


@triton.jit
def _key_block_changed(K, V, base, rows, dims, q, start_n, n, qk_scale_log2,
                       CAUSAL: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                       MISTAKE: tl.constexpr):  # fmt: skip
    cols = start_n + tl.arange(0, BLOCK_N)
    if MISTAKE == KEY_ROWS_ONE_APART:
        offsets = cols[:, None] + dims[None, :]  # row stride 1, not HEAD_DIM
    else:
        offsets = cols[:, None] * HEAD_DIM + dims[None, :]
    k = tl.load(K + base + offsets, mask=cols[:, None] < n, other=0.0)
    v = tl.load(V + base + offsets, mask=cols[:, None] < n, other=0.0)
    s = tl.dot(q, tl.trans(k)) * qk_scale_log2
    if MISTAKE == NO_PADDING_MASK:
        visible = cols[None, :] >= 0  # every column of the block, even past n
    else:
        visible = cols[None, :] < n
    if CAUSAL:
        if MISTAKE == DIAGONAL_HIDDEN:
            visible = visible & (cols[None, :] < rows[:, None])
        elif MISTAKE != NO_CAUSAL_MASK:
            visible = visible & (cols[None, :] <= rows[:, None])
    s = tl.where(visible, s, float("-inf"))
    return s, v


@triton.jit
def _forward_changed(Q, K, V, Out, n, qk_scale_log2, CAUSAL: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                     MISTAKE: tl.constexpr):  # fmt: skip
    block_index, base, rows, dims, q = _load_q(Q, n, BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, _stop(block_index, n, CAUSAL, BLOCK_M), BLOCK_N):
        s, v = _key_block_changed(K, V, base, rows, dims, q, start_n, n, qk_scale_log2, CAUSAL,
                                  BLOCK_N, HEAD_DIM, MISTAKE)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p, v)
        m_i = m_new
    _store(Out, base, rows, dims, n, acc, l_i, HEAD_DIM)


@triton.jit
def _no_causal_mask(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    """Only the loop bound is causal: inside the diagonal block, later keys are seen."""
    _forward_changed(Q, K, V, Out, n, qk_scale_log2, CAUSAL, BLOCK_M, BLOCK_N, HEAD_DIM,
                     NO_CAUSAL_MASK)  # fmt: skip


@triton.jit
def _diagonal_hidden(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    """cols < rows: a query may not see its own key (row 0 sees nothing at all)."""
    _forward_changed(Q, K, V, Out, n, qk_scale_log2, CAUSAL, BLOCK_M, BLOCK_N, HEAD_DIM,
                     DIAGONAL_HIDDEN)  # fmt: skip


@triton.jit
def _no_padding_mask(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    """The keys past n in the last block (loaded as zeros) are not masked."""
    _forward_changed(Q, K, V, Out, n, qk_scale_log2, CAUSAL, BLOCK_M, BLOCK_N, HEAD_DIM,
                     NO_PADDING_MASK)  # fmt: skip


@triton.jit
def _key_rows_one_apart(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    """K and V offset by cols + dims: the row stride 1 instead of HEAD_DIM."""
    _forward_changed(Q, K, V, Out, n, qk_scale_log2, CAUSAL, BLOCK_M, BLOCK_N, HEAD_DIM,
                     KEY_ROWS_ONE_APART)  # fmt: skip


# --- resident_blocks -------------------------------------------------------------------------


def _resident(regs, shared, warps, gpu, *, unit=256, reserve=True, pool=None, warp_limit=True,
              block_limit=True, ceil=False, per_block_regs=False):  # fmt: skip
    """The occupancy formula as a student writes it, with one of its usual slips."""
    from attn_course.kernels.targets import get_target

    t = get_target(gpu)
    per_warp = -(-32 * regs // unit) * unit
    limits = [t.registers_per_sm // (per_warp * warps)]
    if per_block_regs:
        limits = [t.registers_per_sm // (regs * 32 * warps)]
    reserved = t.shared_per_sm - t.shared_per_block if reserve else 0
    pool = t.shared_per_sm if pool is None else pool(t)
    if shared + reserved:
        limits.append(-(-pool // (shared + reserved)) if ceil else pool // (shared + reserved))
    if warp_limit:
        limits.append(t.max_warps_per_sm // warps)
    if block_limit:
        limits.append(t.max_blocks_per_sm)
    return min(limits)


def _resident_library(regs, shared, warps, gpu):
    from attn_course.kernels.targets import get_target, occupancy

    return occupancy(get_target(gpu), registers=regs, shared_bytes=shared, num_warps=warps).blocks


def _resident_float(regs, shared, warps, gpu):
    from attn_course.kernels.targets import get_target

    t = get_target(gpu)
    return min(t.registers_per_sm / (-(-32 * regs // 256) * 256 * warps),
               t.max_warps_per_sm / warps, t.max_blocks_per_sm)  # fmt: skip


def _resident_by_hand(r, s, w, gpu):
    from attn_course.kernels.targets import get_target

    t = get_target(gpu)
    reserved = t.shared_per_sm - t.shared_per_block
    return min(
        t.registers_per_sm // (math.ceil(r * 32 / 256) * 256 * w),
        t.shared_per_sm // (s + reserved) if s + reserved else t.max_blocks_per_sm,
        t.max_warps_per_sm // w,
        t.max_blocks_per_sm,
    )


WRONG = {
    "resident_blocks": [
        Wrong("registers not rounded", lambda *a: _resident(*a, per_block_regs=True), "256"),
        Wrong("no reserved shared memory", lambda *a: _resident(*a, reserve=False), "reserves"),
        Wrong("per-block shared memory as the pool",
              lambda *a: _resident(*a, pool=lambda t: t.shared_per_block), "shared_per_sm"),
        Wrong("no warp limit", lambda *a: _resident(*a, warp_limit=False), "max_warps_per_sm"),
        Wrong("no block limit", lambda *a: _resident(*a, block_limit=False), "max_blocks_per_sm"),
        Wrong("warps, not blocks", lambda r, s, w, t: _resident(r, s, w, t) * w, "resident warps"),
        Wrong("rounds shared memory up", lambda *a: _resident(*a, ceil=True), "four limits"),
        Wrong("a float", _resident_float, "type int"),
        Wrong("the library's occupancy", _resident_library, "targets.occupancy"),
    ],
    "causal_kv_blocks": [
        Wrong("diagonal block forgotten", lambda i, bm, bn: i * bm // bn, "diagonal"),
        Wrong("rounds down", lambda i, bm, bn: (i + 1) * bm // bn, "round up"),
        Wrong("the last block's index", lambda i, bm, bn: ((i + 1) * bm - 1) // bn, "one more"),
        Wrong("a // b + 1", lambda i, bm, bn: (i + 1) * bm // bn + 1, "one too many"),
        Wrong("assumes equal blocks", lambda i, bm, bn: i + 1, "block_m == block_n"),
        Wrong("block sizes swapped", lambda i, bm, bn: ((i + 1) * bn + bm - 1) // bm, "swapped"),
        Wrong("a float", _blocks_float, "type int"),
    ],
    "kv_head_for": [
        Wrong("interleaved", lambda h, heads, kv: h % kv, "interleaves"),
        Wrong("divides by kv_heads", lambda h, heads, kv: h // kv, "not by kv_heads"),
        Wrong("the group size", lambda h, heads, kv: heads // kv, "not the group size"),
        Wrong("the query head itself", lambda h, heads, kv: h, "share one kv head"),
        Wrong(
            "position inside the group",
            lambda h, heads, kv: h % (heads // kv),
            "position inside its group",
        ),
        Wrong("rounds up", lambda h, heads, kv: -(-h // (heads // kv)), "round down"),
        Wrong("reversed", lambda h, heads, kv: kv - 1 - h // (heads // kv), "not reversed"),
        Wrong("a float", _head_float, "type int"),
    ],
    "attention_tflops": [
        Wrong("no causal halving", lambda *a: _tflops(*a, halve="never"), "halve the FLOPs"),
        Wrong("always halves", lambda *a: _tflops(*a, halve="always"), "only when causal"),
        Wrong("one matmul", lambda *a: _tflops(*a, matmuls=1), "two matmuls"),
        Wrong("causal as n(n+1)/2", lambda *a: _tflops(*a, triangle=True), "not n(n+1)/2"),
        Wrong("ms taken as seconds", lambda *a: _tflops(*a, per_ms=1.0), "not by ms"),
        Wrong("ms times 1e3", lambda *a: _tflops(*a, per_ms=1e3), "not ms · 1e3"),
        Wrong("FLOP/s, not TFLOP/s", lambda *a: _tflops(*a, tera=1.0), "divide FLOP/s by 1e12"),
        Wrong("GFLOP/s", lambda *a: _tflops(*a, tera=1e9), "1e9 gives GFLOP/s"),
        Wrong("no batch", lambda b, h, n, d, c, ms: _tflops(1, h, n, d, c, ms), "left out × batch"),
        Wrong("no heads", lambda b, h, n, d, c, ms: _tflops(b, 1, n, d, c, ms), "left out × heads"),
        Wrong("heads counted twice", _tflops_heads_twice, "counted twice"),
        Wrong("forward and backward", lambda *a: _tflops(*a) * 3.5, "forward pass only"),
        Wrong("cost's attention_flops and tflops_per_s", _tflops_course, "cost.attention_flops"),
        Wrong("cost.attention_matmul_flops", _tflops_cost, "cost.attention_matmul_flops"),
    ],
    "flash_inner_loop": [
        Wrong("acc not rescaled", _no_acc_rescale, "accumulator"),
        Wrong("l_i not rescaled", _no_sum_rescale, "running sum"),
        Wrong("alpha after m_i = m_new", _alpha_after_update, "old* m_i"),
        Wrong("m_i never updated", _max_never_stored, "m_i = m_new"),
        Wrong("tl.exp for tl.exp2", _natural_exp, "tl.exp2, not tl.exp"),
        Wrong("tl.sum(p, 0)", _sum_down_columns, "tl.sum(p, 1)"),
        Wrong("acc normalised inside the loop", _normalised_in_loop, "divides by l_i once"),
        Wrong("p from the old maximum", _old_max_in_p, "nan or inf"),
        Wrong("no maximum subtracted", _no_max_subtracted, "nan or inf"),
        Wrong("causal mask dropped", _no_causal_mask, "keep the causal mask"),
        Wrong("diagonal hidden", _diagonal_hidden, "keep the diagonal"),
        Wrong("no padding mask", _no_padding_mask, "partial key block"),
        Wrong("K, V rows one element apart", _key_rows_one_apart, "wrong stride"),
    ],
}

RIGHT = {
    "resident_blocks": [
        lambda r, s, w, t: _resident(r, s, w, t),
        _resident_by_hand,
    ],
    "causal_kv_blocks": [
        lambda i, bm, bn: ((i + 1) * bm + bn - 1) // bn,
        lambda i, bm, bn: math.ceil((i + 1) * bm / bn),  # exact at these sizes
        lambda i, bm, bn: -(-(i + 1) * bm // bn),
    ],
    "kv_head_for": [
        lambda h, heads, kv: h // (heads // kv),
        lambda h, heads, kv: h * kv // heads,
        lambda h, heads, kv: int(h / (heads / kv)),
    ],
    "attention_tflops": [
        lambda *a: _tflops(*a),
        lambda b, h, n, d, c, ms: 4 * b * h * n * n * d * (0.5 if c else 1) * 1e-9 / ms,
    ],
    "flash_inner_loop": [_guarded_update],
}
