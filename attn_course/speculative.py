"""Notebook 08: speculative decoding with greedy acceptance, and what it should buy.

A small *draft* model proposes ``k`` tokens one after another; the *target* model scores
all ``k + 1`` positions in ONE forward pass over its KV cache, keeps the longest prefix of
the proposal that equals its own argmax, and appends its own token at the first mismatch
(or a bonus token when all ``k`` match). Every kept token is the target's own greedy
choice, so the output is exactly that of plain greedy decoding with the target
(:func:`attn_course.kvcache.generate_cached`); only the number of target passes changes.
(Leviathan, Kalman, Matias 2023, "Fast Inference from Transformers via Speculative
Decoding"; Chen et al. 2023, "Accelerating Large Language Model Decoding with Speculative
Sampling". Greedy acceptance is their sampling rule at temperature 0.)

If each proposed token is accepted with probability α independently, one target pass
yields ``(1 - α^(k+1)) / (1 - α)`` tokens on average (Leviathan et al. eq. 1), and with a
draft step costing ``c`` target steps the expected wall-clock speed-up is
``(1 - α^(k+1)) / ((1 - α)(k c + 1))`` (their Theorem 3.8).

On this CPU with the course's tiny models, a forward pass costs mostly Python and
per-operator overhead, so a 1-layer draft is not much cheaper than a 2-4 layer target (c is
0.2-0.6 rather than the 0.01-0.1 of a real draft/target pair) and the measured speed-up
can be below 1: the formula with the measured α and c says so before the clock does.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import plotly.graph_objects as go
import torch

from attn_course.figures import style
from attn_course.kvcache import generate_cached
from attn_course.measure import time_call, torch_threads
from attn_course.model import GPT, CharTokenizer, GPTConfig, LayerCache, corpus_text, train
from attn_course.validate import check_count, check_non_negative, check_positive

__all__ = [
    "SpeculativeMeasurement",
    "SpeculativeResult",
    "best_k",
    "decode_step_seconds",
    "expected_speedup",
    "expected_tokens_per_pass",
    "measure_speculative",
    "speculative_generate",
    "speedup_figure",
    "train_pair",
]


# --- the formula --------------------------------------------------------------------------


def _check_alpha(alpha: float) -> float:
    alpha = check_non_negative("alpha", alpha)
    if alpha > 1:
        raise ValueError(f"alpha must be in [0, 1] (an acceptance probability), got {alpha!r}")
    return alpha


def expected_tokens_per_pass(alpha: float, k: int) -> float:
    """Expected tokens one target pass produces: ``(1 - α^(k+1)) / (1 - α)``; ``k + 1`` at α = 1.

    The pass keeps draft token i with probability α^i (all before it accepted) and always
    adds one token of its own, so the mean is ``1 + α + ... + α^k`` (Leviathan et al.
    2023, eq. 1). ``alpha`` in [0, 1]: the chance a proposed token is accepted; ``k >= 1``:
    tokens proposed per pass. Unitless (tokens per target pass, between 1 and k + 1).
    """
    alpha, k = _check_alpha(alpha), check_count("k", k)
    if alpha == 1:
        return float(k + 1)
    if alpha == 0:
        return 1.0
    # 1 - α^(k+1) as -expm1((k+1) log α): exact near α = 1, where 1 - α^(k+1) cancels.
    return -math.expm1((k + 1) * math.log(alpha)) / (1 - alpha)


def expected_speedup(
    alpha: float, k: int, cost_ratio: float, *, verify_ratio: float = 1.0
) -> float:
    """Expected wall-clock speed-up over plain decoding: ``(1 - α^(k+1)) / ((1 - α)(k c + 1))``.

    Leviathan et al. 2023, Theorem 3.8. A pass costs ``k`` draft steps of ``c`` target
    steps each plus one target step (verifying k + 1 positions is assumed to cost one
    decode step: decode is memory-bound, so reading the weights once serves them all) and
    yields :func:`expected_tokens_per_pass` tokens. ``cost_ratio`` = c > 0: seconds of one
    draft step / seconds of one target step. Unitless; below 1 speculation is a slow-down.
    ``verify_ratio`` = v > 0 drops that assumption: the verifying pass costs v decode
    steps, and the denominator becomes ``k c + v`` (on a CPU, where a pass over k + 1
    tokens is dearer than over one, v is 1.1-1.5; v = 1 is the paper's formula).
    """
    cost_ratio = check_positive("cost_ratio", cost_ratio)
    verify_ratio = check_positive("verify_ratio", verify_ratio)
    tokens = expected_tokens_per_pass(alpha, k)
    return tokens / (k * cost_ratio + verify_ratio)


def best_k(alpha: float, cost_ratio: float, *, max_k: int = 16) -> int:
    """The ``k`` in 1..max_k with the largest :func:`expected_speedup` (the smallest on a tie).

    If even that speed-up is below 1 (a poor draft, or one nearly as slow as the target),
    speculation does not pay at any k and plain decoding is the better choice.
    """
    _check_alpha(alpha)
    check_positive("cost_ratio", cost_ratio)
    max_k = check_count("max_k", max_k, 1, 4096)
    return max(range(1, max_k + 1), key=lambda k: (expected_speedup(alpha, k, cost_ratio), -k))


# --- the algorithm ------------------------------------------------------------------------


@dataclass
class SpeculativeResult:
    """One speculative generation.

    tokens:         (1, prompt + new) — identical to ``generate_cached(target, ...).tokens``
    proposed:       draft tokens proposed, all passes together
    accepted:       of those, the ones the target kept (its argmax agreed)
    target_passes:  target forward passes, the prefill included (it yields the first token)
    draft_passes:   draft forward passes (its prefill and one per proposed token)
    seconds:        wall-clock seconds of the whole generation
    rejected:       passes that stopped at a mismatch (the others accepted all k proposals)
    """

    tokens: torch.Tensor
    proposed: int
    accepted: int
    target_passes: int
    draft_passes: int
    seconds: float
    rejected: int = 0

    @property
    def new_tokens(self) -> int:
        """Tokens generated: every target pass adds one of its own to the accepted drafts."""
        return self.accepted + self.target_passes

    @property
    def acceptance_rate(self) -> float:
        """accepted / proposed (0.0 when nothing was proposed, e.g. ``new_tokens = 1``)."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def alpha(self) -> float:
        """Per-token acceptance probability α: accepted / (accepted + rejected).

        The proposals after a pass's first mismatch are never tested, so accepted/proposed
        underestimates α; every tested token was either accepted or the one rejection of
        its pass (the maximum-likelihood α of the geometric model behind the formula).
        1.0 when no token was ever rejected, 0.0 when none was tested.
        """
        tested = self.accepted + self.rejected
        return self.accepted / tested if tested else 0.0

    @property
    def tokens_per_pass(self) -> float:
        """New tokens / target passes (the prefill pass counted: it yields the first token)."""
        return self.new_tokens / self.target_passes


def _check_pair(target: GPT, draft: GPT, prompt: torch.Tensor, new_tokens: int, k: int) -> None:
    if not isinstance(target, GPT) or not isinstance(draft, GPT):
        raise ValueError("target and draft must be attn_course.model.GPT models")
    if target.cfg.vocab != draft.cfg.vocab:
        raise ValueError(
            f"draft vocab ({draft.cfg.vocab}) must equal target vocab ({target.cfg.vocab})"
        )
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.shape[0] != 1:
        raise ValueError("prompt must be a (1, tokens) tensor: speculation runs one sequence")
    check_count("k", k)
    check_count("new_tokens", new_tokens)
    for name, model in (("target", target), ("draft", draft)):
        if prompt.shape[1] + new_tokens - 1 > model.cfg.context:
            raise ValueError(
                f"prompt ({prompt.shape[1]}) + new_tokens ({new_tokens}) - 1 exceeds the "
                f"{name}'s context of {model.cfg.context}"
            )


def _truncate(caches: list[LayerCache], length: int) -> list[LayerCache]:
    """Roll a cache back to its first ``length`` tokens (dim 2 of every (k, v))."""
    return [(k[:, :, :length], v[:, :, :length]) for k, v in caches]


def _propose(
    draft: GPT, caches: list[LayerCache], pending: torch.Tensor, k: int
) -> tuple[list[int], list[LayerCache]]:
    """k greedy draft tokens; ``pending`` holds the tokens not yet in the draft's cache."""
    proposal = []
    for _ in range(k):
        logits, caches = draft(pending, caches)
        token = int(logits[0, -1].argmax())
        proposal.append(token)
        pending = torch.tensor([[token]], dtype=torch.long)
    return proposal, caches


def _accepted_prefix(proposal: list[int], choices: list[int]) -> int:
    """How many proposed tokens equal the target's argmax at their position."""
    n = 0
    while n < len(proposal) and proposal[n] == choices[n]:
        n += 1
    return n


@torch.no_grad()
def speculative_generate(
    target: GPT, draft: GPT, prompt: torch.Tensor, new_tokens: int, *, k: int
) -> SpeculativeResult:
    """Greedy speculative decoding of ``new_tokens`` tokens after ``prompt`` (1, t).

    Both models prefill the prompt; the target's prefill gives the first token. Then, until
    ``new_tokens`` are out, a round: the draft proposes ``k' = min(k, remaining - 1)``
    tokens (none are proposed that could not be kept); the target runs ONE pass over
    ``[last token, d_1 .. d_k']`` whose k' + 1 argmaxes ``g_0 .. g_k'`` say what it would
    have generated; it keeps ``d_1 .. d_n`` for the longest prefix with ``d_i = g_(i-1)``
    and appends ``g_n``. Both caches are then cut back (dim 2) to the tokens kept, so the
    next round starts from exactly the state plain decoding would be in.
    """
    _check_pair(target, draft, prompt, new_tokens, k)
    t0 = time.perf_counter()
    logits, target_cache = target(prompt)
    _, draft_cache = draft(prompt)
    seq = prompt[0].tolist() + [int(logits[0, -1].argmax())]
    proposed = accepted = rejected = 0
    target_passes = draft_passes = 1
    while len(seq) - prompt.shape[1] < new_tokens:
        remaining = new_tokens - (len(seq) - prompt.shape[1])
        k_now = min(k, remaining - 1)
        cached = draft_cache[0][0].shape[2]  # the draft may lag by a token after a full accept
        pending = torch.tensor([seq[cached:]], dtype=torch.long)
        proposal, draft_cache = _propose(draft, draft_cache, pending, k_now)
        logits, target_cache = target(torch.tensor([seq[-1:] + proposal]), target_cache)
        choices = logits[0].argmax(-1).tolist()
        n = _accepted_prefix(proposal, choices)
        seq += proposal[:n] + [choices[n]]
        proposed, accepted, rejected = proposed + k_now, accepted + n, rejected + (n < k_now)
        target_passes, draft_passes = target_passes + 1, draft_passes + k_now
        # The target cache must hold every token but the last (the next pass's input).
        target_cache = _truncate(target_cache, len(seq) - 1)
        draft_cache = _truncate(draft_cache, min(draft_cache[0][0].shape[2], len(seq) - 1))
    tokens = torch.tensor([seq], dtype=torch.long)
    seconds = time.perf_counter() - t0
    return SpeculativeResult(
        tokens, proposed, accepted, target_passes, draft_passes, seconds, rejected
    )


# --- a draft/target pair, and measuring it ------------------------------------------------


def train_pair(
    *,
    steps: int,
    draft_steps: int | None = None,
    seed: int = 0,
    context: int = 256,
    layers: int = 4,
    d_model: int = 128,
    heads: int = 8,
    draft_layers: int = 1,
    draft_d_model: int = 32,
    draft_heads: int = 4,
    batch: int = 16,
    window: int = 64,
    progress: bool = False,
) -> tuple[GPT, GPT, CharTokenizer, torch.Tensor]:
    """A target like notebook 07's GPT and a much smaller draft, trained on the same text.

    Both learn next-character prediction on :func:`attn_course.model.corpus_text` with one
    :class:`~attn_course.model.CharTokenizer` (so their vocabularies agree), ``steps``
    (target) and ``draft_steps`` (draft; default ``steps``) AdamW steps of ``batch``
    windows of ``window`` characters. Defaults: notebook 07's full-size target (4 layers,
    d_model 128, 8 heads, context 256) and a 1-layer d_model 32 draft, about 1/60 of its
    matmul FLOPs per token. Returns ``(target, draft, tokenizer, data)``, models in eval mode.
    """
    check_count("steps", steps, minimum=0)
    draft_steps = steps if draft_steps is None else check_count("draft_steps", draft_steps, 0)
    check_count("seed", seed, minimum=0)
    text = corpus_text()
    tok = CharTokenizer(text)
    data = tok.encode(text)
    target = GPT(GPTConfig(tok.vocab, context, layers, d_model, heads, heads, seed=seed))
    draft = GPT(
        GPTConfig(tok.vocab, context, draft_layers, draft_d_model, draft_heads, draft_heads, seed)
    )
    window = min(window, context)
    train(target, data, steps=steps, batch=batch, window=window, seed=seed, progress=progress)
    train(draft, data, steps=draft_steps, batch=batch, window=window, seed=seed, progress=progress)
    return target, draft, tok, data


def decode_step_seconds(
    model: GPT, context: int, *, tokens: int = 1, min_total_s: float = 0.05
) -> float:
    """Seconds of one cached forward of ``tokens`` new tokens after ``context`` cached ones.

    The fastest of :func:`attn_course.measure.time_call` runs; the cache is a prefill of
    ``context`` zeros. ``tokens = 1`` is a decode step, the unit of the cost ratio
    c = draft step / target step of :func:`expected_speedup`; ``tokens = k + 1`` is the
    target's verifying pass (its ratio to a decode step is ``verify_ratio``).
    """
    context = check_count("context", context, 1, model.cfg.context - 1)
    tokens = check_count("tokens", tokens, 1, model.cfg.context - context)
    check_positive("min_total_s", min_total_s)
    with torch.no_grad():
        _, caches = model(torch.zeros(1, context, dtype=torch.long))
        new = torch.zeros(1, tokens, dtype=torch.long)
        return time_call(lambda: model(new, caches), 5, min_total_s)


@dataclass(frozen=True)
class SpeculativeMeasurement:
    """One draft length k, measured over a set of prompts (seconds summed over prompts).

    acceptance_rate: accepted / proposed; alpha: the per-token α (see
    :attr:`SpeculativeResult.alpha`); tokens_per_pass: new tokens / target passes;
    speculative_s, plain_s: median over repeats of the seconds to generate for every
    prompt, speculative vs ``generate_cached``; measured_speedup = plain_s / speculative_s;
    cost_ratio: c measured as draft step / target step seconds (:func:`decode_step_seconds`);
    predicted_speedup: :func:`expected_speedup` (measured α, k, measured c; the paper's v = 1);
    predicted_tokens_per_pass: :func:`expected_tokens_per_pass` (measured α, k);
    identical: every speculative output equalled ``generate_cached``'s;
    verify_ratio: v measured as (target pass over k + 1 tokens) / (target decode step);
    predicted_speedup_with_verify: :func:`expected_speedup` with that measured v.
    """

    k: int
    acceptance_rate: float
    alpha: float
    tokens_per_pass: float
    speculative_s: float
    plain_s: float
    measured_speedup: float
    cost_ratio: float
    predicted_speedup: float
    predicted_tokens_per_pass: float
    identical: bool
    verify_ratio: float = 1.0
    predicted_speedup_with_verify: float = 0.0

    def row(self) -> dict[str, float | int | bool]:
        """The columns a table shows, named with their units (for ``figures.format_table``)."""
        return {
            "k": self.k,
            "alpha": self.alpha,
            "tokens/pass": self.tokens_per_pass,
            "c (draft/target)": self.cost_ratio,
            "v (verify/step)": self.verify_ratio,
            "speculative (s)": self.speculative_s,
            "plain (s)": self.plain_s,
            "speed-up measured": self.measured_speedup,
            "predicted (v=1)": self.predicted_speedup,
            "predicted (v)": self.predicted_speedup_with_verify,
            "identical": self.identical,
        }


def _check_measure_inputs(
    target: GPT, draft: GPT, prompts: list[torch.Tensor], new_tokens: int, ks: list[int]
) -> None:
    if not isinstance(prompts, list | tuple) or not prompts:
        raise ValueError("prompts must be a non-empty list of (1, tokens) tensors")
    if not isinstance(ks, list | tuple) or not ks:
        raise ValueError("ks must be a non-empty list of draft lengths >= 1")
    for k in ks:
        check_count("k", k)
    for p in prompts:
        _check_pair(target, draft, p, new_tokens, 1)


def _plain_run(target: GPT, prompts: list[torch.Tensor], new_tokens: int) -> tuple[float, list]:
    t0 = time.perf_counter()
    outs = [generate_cached(target, p, new_tokens).tokens for p in prompts]
    return time.perf_counter() - t0, outs


def _step_costs(
    target: GPT, draft: GPT, context: int, ks: list[int], new_tokens: int, rounds: int = 3
) -> tuple[float, dict[int, float]]:
    """c = draft step / target step, and per k v = verifying pass / target step.

    ``rounds`` sweeps over all the timings, each kept at its fastest, so a burst of load
    spoils one round of every timing instead of all rounds of one.
    """
    # A pass verifies at most new_tokens - 1 tokens (k' <= remaining - 1, plus one).
    widths = {k: max(1, min(k + 1, new_tokens - 1)) for k in ks}
    context = min(context, target.cfg.context - max(widths.values()), draft.cfg.context - 1)
    context = max(1, context)
    calls = {"target": (target, 1), "draft": (draft, 1)}
    calls.update({k: (target, w) for k, w in widths.items()})
    best = dict.fromkeys(calls, math.inf)
    for _ in range(rounds):
        for key, (model, width) in calls.items():
            seconds = decode_step_seconds(model, context, tokens=width, min_total_s=0.02)
            best[key] = min(best[key], seconds)
    return best["draft"] / best["target"], {k: best[k] / best["target"] for k in ks}


def measure_speculative(
    target: GPT,
    draft: GPT,
    prompts: list[torch.Tensor],
    new_tokens: int,
    ks: list[int],
    *,
    repeats: int = 3,
    threads: int | None = 1,
) -> list[SpeculativeMeasurement]:
    """Acceptance, tokens per pass and wall-clock speed-up of speculation, per k in ``ks``.

    Each repeat times plain ``generate_cached`` over all prompts and then speculation for
    every k (interleaved, so a burst of load on a shared machine spoils one repeat of each
    rather than all repeats of one); seconds are medians over ``repeats``. The cost ratio c
    and the verify ratio v are timed once per call at the mean context of the generation
    (prompt + new / 2). ``threads``: torch CPU threads while measuring (restored after).
    On this CPU the tiny draft is not much cheaper than the tiny target (c ~ 0.2-0.5, not
    the 0.01-0.1 of a real pair), verifying k + 1 tokens costs more than one step (v > 1)
    and every round pays Python overhead, so the speed-up may be below 1: the predicted
    values, from the measured α, c and v, say why. What the formula leaves out and the
    clock does not: the draft's own prefill, a two-token draft pass after a round that
    accepted everything, and building inputs / cutting caches each round (about a tenth
    of the time with the tiny models), so the measured speed-up sits somewhat below the
    prediction.
    """
    _check_measure_inputs(target, draft, prompts, new_tokens, ks)
    check_count("repeats", repeats)
    spec_s: dict[int, list[float]] = {k: [] for k in ks}
    plain_s: list[float] = []
    results: dict[int, list[SpeculativeResult]] = {}
    identical = dict.fromkeys(ks, True)
    with torch_threads(threads):
        for _ in range(repeats):
            seconds, plain = _plain_run(target, prompts, new_tokens)
            plain_s.append(seconds)
            for k in ks:
                runs = [speculative_generate(target, draft, p, new_tokens, k=k) for p in prompts]
                spec_s[k].append(sum(r.seconds for r in runs))
                identical[k] &= all(
                    torch.equal(r.tokens, o) for r, o in zip(runs, plain, strict=True)
                )
                results[k] = runs
        mean_context = round(sum(p.shape[1] for p in prompts) / len(prompts) + new_tokens / 2)
        c, verify = _step_costs(target, draft, mean_context, ks, new_tokens)
    plain_median = statistics.median(plain_s)
    return [
        _measurement(
            k, results[k], statistics.median(spec_s[k]), plain_median, c, verify[k], identical[k]
        )  # fmt: skip
        for k in ks
    ]


def _measurement(
    k: int,
    runs: list[SpeculativeResult],
    spec_s: float,
    plain_s: float,
    c: float,
    v: float,
    identical: bool,
) -> SpeculativeMeasurement:
    """Pool the prompts' counts into one :class:`SpeculativeMeasurement`."""
    total = SpeculativeResult(
        torch.empty(0),
        sum(r.proposed for r in runs),
        sum(r.accepted for r in runs),
        sum(r.target_passes for r in runs),
        sum(r.draft_passes for r in runs),
        spec_s,
        sum(r.rejected for r in runs),
    )
    return SpeculativeMeasurement(
        k=k,
        acceptance_rate=total.acceptance_rate,
        alpha=total.alpha,
        tokens_per_pass=total.tokens_per_pass,
        speculative_s=spec_s,
        plain_s=plain_s,
        measured_speedup=plain_s / spec_s,
        cost_ratio=c,
        predicted_speedup=expected_speedup(total.alpha, k, c),
        predicted_tokens_per_pass=expected_tokens_per_pass(total.alpha, k),
        identical=identical,
        verify_ratio=v,
        predicted_speedup_with_verify=expected_speedup(total.alpha, k, c, verify_ratio=v),
    )


def speedup_figure(measurements: list[SpeculativeMeasurement]) -> go.Figure:
    """Measured vs predicted speed-up against the draft length k, with the break-even line 1."""
    if not measurements:
        raise ValueError("measurements must be a non-empty list of SpeculativeMeasurement")
    ks = [m.k for m in measurements]
    fig = go.Figure()
    fig.add_scatter(
        x=ks, y=[m.measured_speedup for m in measurements], mode="lines+markers",
        name="measured (this CPU)",
    )  # fmt: skip
    fig.add_scatter(
        x=ks, y=[m.predicted_speedup for m in measurements], mode="lines+markers",
        line={"dash": "dash"}, name="predicted: (1-α^(k+1)) / ((1-α)(kc+1))",
    )  # fmt: skip
    fig.add_scatter(
        x=ks, y=[m.predicted_speedup_with_verify for m in measurements], mode="lines+markers",
        line={"dash": "dot"}, name="predicted with the measured verify cost v: ÷ (kc+v)",
    )  # fmt: skip
    fig.add_hline(y=1, line={"color": "grey", "dash": "dot"})
    c = statistics.median(m.cost_ratio for m in measurements)
    fig.update_xaxes(title="draft length k (tokens proposed per target pass)", tickvals=ks)
    fig.update_yaxes(title="speed-up over plain greedy decoding (×)", rangemode="tozero")
    title = f"Speculative decoding: measured vs predicted speed-up (measured c = {c:.2f})"
    return style(fig, title, width=800, height=420)
