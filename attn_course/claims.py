"""Check the claims: every checkable statement of the two source texts, with a computed verdict.

The course answers two texts that do not ship with it; :data:`SOURCES` describes them
(``sources_markdown()`` for the notebook). Each :class:`Claim` is one statement, in the
course's own words and in the order the texts make them, with where in its text it
stands. A claim is judged by one or more :class:`Check` objects, each of which puts the
text's figure (``stated``) beside ours (``found``) under a named rule (:data:`RULES`):

* ``found`` is computed by a function of this package (:mod:`attn_course.cost`, the
  presets, the tiling, linear-attention and sparse-attention modules) or, for a published
  measurement or a product fact, taken from a document named in the check's ``source``
  (a paper with its section, a config file, or a vendor page with its date);
* the verdict is a function of ``stated`` and ``found`` only, so changing the text's
  figure changes the verdict (``Claim.with_stated``; the tests do it for every claim).

How checks combine. A statement is split into **parts** when it asserts several things
(all of them must hold), and a part into **readings** when the words allow more than one
meaning (the part holds under any reading that holds):

* a part: ``holds`` if every reading holds; ``roughly holds`` if at least one reading holds
  or roughly holds ("true under one reading and not another"); else ``wrong``;
* a claim: its part's verdict if it has one part; with several, ``holds`` if all hold,
  ``roughly holds`` if none is wrong, ``wrong`` if all are, else ``partly wrong``.

Verdicts (:data:`VERDICTS`): ``holds``, ``roughly holds``, ``partly wrong``, ``wrong``, and
``not checkable`` for the few statements that assert nothing a number or a document can
settle; those say why, in a sentence that starts "not checkable, because".

``all_claims()`` returns the list, ``claims_table()`` plain dicts, ``claims_markdown()`` /
``claims_html()`` a table for the notebook, ``verdict_counts()`` the tally.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace

import torch

from attn_course import cost, linear, sparse, tiling
from attn_course.presets import get_hardware, get_model, get_moe_model

__all__ = [
    "HOLDS",
    "INTERVIEW",
    "NOT_CHECKABLE",
    "PARTLY",
    "ROUGHLY",
    "RULES",
    "SOURCES",
    "TEXTBOOK",
    "VERDICTS",
    "WRONG",
    "Check",
    "Claim",
    "Rule",
    "all_claims",
    "claims_html",
    "claims_markdown",
    "claims_table",
    "get_claim",
    "sources_markdown",
    "verdict_counts",
    "verdict_from_ratio",
    "verdicts_markdown",
]

TEXTBOOK = "textbook section"
INTERVIEW = "interview answer"

# What each source is, for a reader who has neither text at hand.
SOURCES = {
    TEXTBOOK: (
        'a section of a deep-learning textbook, titled "The quadratic wall: attention '
        'complexity", that motivates the chapters on FlashAttention, linear and sparse '
        "attention: it puts figures on the score matrix (per head, per layer, in training), "
        "on memory traffic on an A100, on the attention/FFN crossover, on the KV cache and "
        "prefill time, and lists production context lengths of 2020-2026"
    ),
    INTERVIEW: (
        "a model answer to an interview question on why standard self-attention costs O(n²) "
        "in the sequence length and how that cost is addressed, from an online collection "
        "of deep-learning interview questions: it sizes the score matrix at n = 4096 and "
        "n = 32,000 in fp32, says how the KV cache grows, and tabulates the ways around the "
        "quadratic cost (sparse, FlashAttention, linear, sliding window, ALiBi/RoPE)"
    ),
}

HOLDS = "holds"
ROUGHLY = "roughly holds"
PARTLY = "partly wrong"
WRONG = "wrong"
NOT_CHECKABLE = "not checkable"
VERDICTS = (HOLDS, ROUGHLY, PARTLY, WRONG, NOT_CHECKABLE)

# Within this factor a figure "holds"; within ROUGH_FACTOR it "roughly holds".
HOLD_FACTOR = 1.1
ROUGH_FACTOR = 2.0
# A growth exponent (log2 of the ratio when n doubles) within these of the stated one.
HOLD_EXPONENT = 0.1
ROUGH_EXPONENT = 0.5

# The day the product pages below were consulted.
CONSULTED = "2026-12-02"

# --- rules --------------------------------------------------------------------------------

Figure = float | tuple[float, float] | bool | str


def verdict_from_ratio(stated: float, recomputed: float) -> str:
    """``holds`` within 10 %, ``roughly holds`` within 2x, else ``wrong``.

    factor = max(stated / recomputed, recomputed / stated); both must be > 0.
    """
    if stated <= 0 or recomputed <= 0:
        raise ValueError(f"stated and recomputed must be > 0, got {stated!r}, {recomputed!r}")
    factor = max(stated / recomputed, recomputed / stated)
    if factor <= HOLD_FACTOR:
        return HOLDS
    if factor <= ROUGH_FACTOR:
        return ROUGHLY
    return WRONG


def _judge_exponent(stated: float, found: float) -> str:
    """Growth exponents (n -> 2n gives 2**exponent): within 0.1 holds, within 0.5 roughly."""
    gap = abs(found - stated)
    return HOLDS if gap <= HOLD_EXPONENT else ROUGHLY if gap <= ROUGH_EXPONENT else WRONG


def _judge_range(stated: tuple[float, float], found: float) -> str:
    """A stated range (low, high): inside holds, within 2x of an end roughly, else wrong."""
    low, high = stated
    if low <= found <= high:
        return HOLDS
    return ROUGHLY if low / ROUGH_FACTOR <= found <= high * ROUGH_FACTOR else WRONG


def _judge_more_than(stated: float, found: float) -> str:
    """An inequality "more than ``stated``": true (holds) or false (wrong)."""
    return HOLDS if found > stated else WRONG


def _judge_less_than(stated: float, found: float) -> str:
    """An inequality "less than ``stated``": true (holds) or false (wrong)."""
    return HOLDS if found < stated else WRONG


def _judge_same(stated: Figure, found: Figure) -> str:
    """A fact (a yes/no or a name): the same as the document's (holds) or not (wrong)."""
    return HOLDS if stated == found else WRONG


@dataclass(frozen=True)
class Rule:
    """How one check turns (stated, found) into a verdict."""

    name: str
    meaning: str
    judge: Callable[[Figure, Figure], str]


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("ratio", "within 10 % holds, within 2x roughly, else wrong", verdict_from_ratio),
        Rule("exponent", "growth exponent within 0.1 holds, within 0.5 roughly", _judge_exponent),
        Rule("range", "inside the range holds, within 2x of it roughly", _judge_range),
        Rule("more than", "true or false: found > stated", _judge_more_than),
        Rule("less than", "true or false: found < stated", _judge_less_than),
        Rule("same", "a fact: the same as the document's, or not", _judge_same),
    )
}


@dataclass(frozen=True)
class Check:
    """One comparison: the text's figure against ours, under a rule of :data:`RULES`.

    label:   what is compared (a part of the statement, or one reading of it)
    stated:  the text's figure: a number, a (low, high) range, or a fact (bool / name)
    found:   ours: computed by a function of this package, or documented in ``source``
    rule:    a key of :data:`RULES`
    source:  where a documented ``found`` comes from (paper and section, config file, or a
             vendor page and its date); empty when ``found`` is computed
    """

    label: str
    stated: Figure
    found: Figure
    rule: str
    source: str = ""

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {sorted(RULES)}, got {self.rule!r}")

    @property
    def verdict(self) -> str:
        """The rule applied to (stated, found)."""
        return RULES[self.rule].judge(self.stated, self.found)

    def describe(self) -> str:
        """One line: label, stated vs found, rule and verdict."""
        return (
            f"{self.label}: stated {_show(self.stated)}, found {_show(self.found)} "
            f"[{self.rule}] -> {self.verdict}"
        )


def _show(value: Figure) -> str:
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, tuple):
        return f"{_show(value[0])}-{_show(value[1])}"
    return f"{value:.4g}"


def _combine_readings(verdicts: Sequence[str]) -> str:
    """Any reading that holds makes the part roughly hold; all holding make it hold."""
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return ROUGHLY if any(v in (HOLDS, ROUGHLY) for v in verdicts) else WRONG


def _combine_parts(verdicts: Sequence[str]) -> str:
    """All parts must hold; some wrong and some not is "partly wrong"."""
    if len(verdicts) == 1:
        return verdicts[0]
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    if WRONG not in verdicts:
        return ROUGHLY
    return WRONG if all(v == WRONG for v in verdicts) else PARTLY


@dataclass(frozen=True)
class Claim:
    """One statement of a source text and what the checks say about it.

    id:            short stable key (``get_claim(id)``)
    source:        which text (``TEXTBOOK`` or ``INTERVIEW``)
    where:         where in that text the statement stands
    claim:         the statement, paraphrased
    stated:        the text's figure, as the text gives it
    recomputed:    our figures, formatted from computed (or documented) values
    assumption:    what our figures assume
    reference:     where the figures and the documented facts come from
    parts:         the checks: a tuple of parts, each a tuple of readings (see the module)
    not_checkable: for a statement no number or document can settle: "not checkable,
                   because ..." (then ``parts`` is empty)
    correction:    what is right, with the arithmetic, where the text is off (or a note)
    """

    id: str
    source: str
    where: str
    claim: str
    stated: str
    recomputed: str
    assumption: str
    reference: str
    parts: tuple[tuple[Check, ...], ...] = ()
    not_checkable: str = ""
    correction: str = ""

    def __post_init__(self) -> None:
        if bool(self.parts) == bool(self.not_checkable):
            raise ValueError(f"{self.id}: give either checks (parts) or a not_checkable reason")
        if self.not_checkable and not self.not_checkable.startswith("not checkable, because"):
            raise ValueError(f"{self.id}: not_checkable must start 'not checkable, because'")
        if any(not part for part in self.parts):
            raise ValueError(f"{self.id}: every part needs at least one check")

    @property
    def checks(self) -> tuple[Check, ...]:
        """Every check of every part, in order."""
        return tuple(check for part in self.parts for check in part)

    @property
    def verdict(self) -> str:
        """Computed from the checks (see the module docstring), never stored."""
        if not self.parts:
            return NOT_CHECKABLE
        return _combine_parts([_combine_readings([c.verdict for c in part]) for part in self.parts])

    @property
    def rule(self) -> str:
        """The rules the checks use, and how they combine."""
        names = sorted({check.rule for check in self.checks})
        shape = "; ".join(
            f"part {i + 1}: {len(part)} reading{'s' if len(part) > 1 else ''}"
            for i, part in enumerate(self.parts)
        )
        return ", ".join(f"{n} ({RULES[n].meaning})" for n in names) + (
            f" [{shape}]" if len(self.checks) > 1 else ""
        )

    @property
    def stated_value(self) -> Figure | None:
        """The first check's stated figure (None for a claim that is not checkable)."""
        return self.checks[0].stated if self.parts else None

    @property
    def recomputed_value(self) -> Figure | None:
        """The first check's found figure (None for a claim that is not checkable)."""
        return self.checks[0].found if self.parts else None

    def with_stated(self, change: Callable[[Check], Figure]) -> Claim:
        """The same claim with every check's stated figure replaced by ``change(check)``."""
        parts = tuple(
            tuple(replace(check, stated=change(check)) for check in part) for part in self.parts
        )
        return replace(self, parts=parts)


def _one(label: str, stated: Figure, found: Figure, rule: str, source: str = "") -> tuple[Check]:
    """A part with a single reading."""
    return (Check(label, stated, found, rule, source),)


def _exponent(total: Callable[[int], float], n: int) -> float:
    """How fast ``total`` grows near n: log2(total(2n) / total(n)) (2 for n², 1 for n)."""
    return math.log2(total(2 * n) / total(n))


_bytes = cost.format_bytes_both
_time = cost.format_seconds


def _count(value: float) -> str:
    return f"{value:,.0f}" if value < 1e10 else f"{value:.3g}"


# --- documented figures -------------------------------------------------------------------
# A published measurement or a product fact is not computed; it is looked up here, with its
# source (and, for a product, the date it was announced or the day its page was consulted).


@dataclass(frozen=True)
class Documented:
    """A figure from a document: what it is, its value, when, and where it is written."""

    label: str
    value: float
    date: str
    source: str

    def cite(self) -> str:
        """``source (date)`` for a check's source field."""
        return f"{self.source} ({self.date})"


_FA1 = "Dao et al., FlashAttention, arXiv:2205.14135, abstract; measured on A100 GPUs (Sec. 4.1)"
_FA2 = "Dao, FlashAttention-2, arXiv:2307.08691, abstract; measured on an A100 80GB SXM4 (Sec. 4.1)"
_FA_REPO = (
    "HazyResearch (now Dao-AILab) flash-attention repository, README 'Full model code and "
    "training script': GPT training with FlashAttention and fused layers vs the HuggingFace "
    "baseline, up to 189 TFLOPs/s per A100"
)

#: Published wall-clock speed-ups of FlashAttention, each with its GPU and baseline.
SPEEDUPS = {
    "fa1_summary_low": Documented(
        "FA-1 as FA-2's abstract sums it up, vs optimized baselines: low end", 2.0,
        "2023-07-17", _FA2,
    ),
    "fa1_summary_high": Documented(
        "FA-1 as FA-2's abstract sums it up, vs optimized baselines: high end", 4.0,
        "2023-07-17", _FA2,
    ),
    "gpt2": Documented(
        "FA-1, GPT-2 training at seq. 1K vs the HuggingFace implementation (8x A100)", 3.0,
        "2022-05-27", _FA1,
    ),
    "lra": Documented(
        "FA-1, long-range arena at seq. 1K-4K vs standard attention (A100)", 2.4,
        "2022-05-27", _FA1,
    ),
    "bert": Documented(
        "FA-1, BERT-large training at seq. 512 vs the MLPerf 1.1 record (8x A100): 15 %", 1.15,
        "2022-05-27", _FA1,
    ),
    "repo_low": Documented(
        "flash-attention repository, GPT training vs HuggingFace (A100): low end", 3.0,
        "2022-11-29", _FA_REPO,
    ),
    "repo_high": Documented(
        "flash-attention repository, GPT training vs HuggingFace (A100): high end", 5.0,
        "2022-11-29", _FA_REPO,
    ),
}  # fmt: skip

#: FlashAttention-2 against FlashAttention-1, and its best attention throughput.
FA2_OVER_FA1 = Documented("FA-2 over FA-1 (A100)", 2.0, "2023-07-17", _FA2)
FA2_PEAK_FLOPS = Documented(
    "FA-2 forward + backward, best case (A100 80GB SXM4)", 230e12, "2023-07-17",
    "Dao, FlashAttention-2, arXiv:2307.08691, Sec. 4.1 (abstract: 50-73 % of the A100's peak)",
)  # fmt: skip

#: ALiBi's own result: trained at 1024 tokens it matches a sinusoidal model trained at 2048.
ALIBI_TRAIN_SHORT = Documented(
    "ALiBi at 1024 tokens vs sinusoidal at 2048, equal perplexity: time (and memory)", 0.89,
    "2021-08-27",
    "Press, Smith & Lewis, Train Short, Test Long (ALiBi), arXiv:2108.12409, abstract: "
    "'training 11% faster and using 11% less memory'",
)  # fmt: skip

#: Mixed-precision Adam keeps 16 bytes per parameter (ZeRO, arXiv:1910.02054, Sec. 3.1).
ADAM_BYTES_PER_PARAMETER = 16

#: Context lengths of production models: tokens, the date, and where it is written.
CONTEXTS = {
    "GPT (2018)": Documented(
        "GPT", 512, "2018-06-11",
        "Radford et al., Improving Language Understanding by Generative Pre-Training, Sec. 4.1",
    ),
    "BERT": Documented(
        "BERT", 512, "2018-10-11",
        "Devlin et al., arXiv:1810.04805, Sec. A.2 (sequences of 512; 'attention is quadratic')",
    ),
    "GPT-3": Documented(
        "GPT-3", 2048, "2020-05-28", "Brown et al., arXiv:2005.14165, Table 2.1 (n_ctx = 2048)"
    ),
    "GPT-4": Documented(
        "GPT-4", 8192, "2023-03-14",
        "OpenAI, GPT-4 research post, https://openai.com/index/gpt-4-research/",
    ),
    "GPT-4-32k": Documented(
        "GPT-4-32k", 32768, "2023-03-14",
        "OpenAI, GPT-4 research post, https://openai.com/index/gpt-4-research/",
    ),
    "GPT-4 Turbo": Documented(
        "GPT-4 Turbo", 128000, "2023-11-06",
        "OpenAI, https://openai.com/index/new-models-and-developer-products-announced-at-devday/",
    ),
    "Claude 1 (100K)": Documented(
        "Claude 1 (claude-v1-100k)", 100_000, "2023-05-11",
        "Anthropic, Introducing 100K Context Windows, https://www.anthropic.com/news/100k-context-windows",
    ),
    "Claude 2": Documented(
        "Claude 2", 100_000, "2023-07-11",
        "Anthropic, https://www.anthropic.com/news/claude-2 (API, and claude.ai opened to the "
        "public in the US and UK)",
    ),
    "Claude 2.1": Documented(
        "Claude 2.1", 200_000, "2023-11-21", "Anthropic, https://www.anthropic.com/news/claude-2-1"
    ),
    "Claude 3": Documented(
        "Claude 3", 200_000, "2024-03-04",
        "Anthropic, https://www.anthropic.com/news/claude-3-family",
    ),
    "Claude 3.5 Sonnet": Documented(
        "Claude 3.5 Sonnet", 200_000, "2024-06-20",
        "Anthropic, https://www.anthropic.com/news/claude-3-5-sonnet",
    ),
    "Claude Sonnet 4 (1M beta)": Documented(
        "Claude Sonnet 4, 1M in beta", 1_000_000, "2025-08-12",
        "Anthropic, https://www.anthropic.com/news/1m-context",
    ),
    "Claude Sonnet 4.5": Documented(
        "Claude Sonnet 4.5", 200_000, "2025-09-29",
        "model page https://platform.claude.com/docs/en/models/sonnet-4-5/overview, consulted "
        f"{CONSULTED}: 200K (1M only through a beta header)",
    ),
    "Claude Opus 4.6": Documented(
        "Claude Opus 4.6", 1_000_000, "2026-02-05",
        "model page "
        f"https://platform.claude.com/docs/en/models/opus-4-6/overview, consulted {CONSULTED}",
    ),
    "Claude Sonnet 4.6": Documented(
        "Claude Sonnet 4.6", 1_000_000, "2026-02-17",
        "model page "
        f"https://platform.claude.com/docs/en/models/sonnet-4-6/overview, consulted {CONSULTED}",
    ),
    "Claude Opus 4.7": Documented(
        "Claude Opus 4.7", 1_000_000, "2026-04-16",
        "AWS Bedrock model card 'Claude Opus 4.7', docs.aws.amazon.com/bedrock/latest/userguide/"
        f"model-card-anthropic-claude-opus-4-7, consulted {CONSULTED}",
    ),
    "Gemini 1.5 Pro": Documented(
        "Gemini 1.5 Pro", 1_000_000, "2024-02-15",
        "Google, Our next-generation model: Gemini 1.5, https://blog.google/technology/ai/"
        "google-gemini-next-generation-model-february-2024/ (1M in private preview)",
    ),
    "Gemini 1.5 Pro (2M)": Documented(
        "Gemini 1.5 Pro, 2M for all developers", 2_097_152, "2024-06-27",
        "Google for Developers blog, 'Gemini 1.5 Pro 2M context window, code execution "
        "capabilities, and Gemma 2 are available today'",
    ),
    "Gemini 2.5 Pro": Documented(
        "Gemini 2.5 Pro", 1_048_576, "2025-03-25",
        "Google, Gemini 2.5: Our most intelligent AI model, https://blog.google/technology/"
        "google-deepmind/gemini-model-thinking-updates-march-2025/ ('1 million token context "
        "window (2 million coming soon)'); Gemini API model page: 1,048,576 input tokens",
    ),
    "Llama 3.1": Documented(
        "Llama 3.1", 131_072, "2024-07-23",
        "Meta, https://ai.meta.com/blog/meta-llama-3-1/; HF meta-llama/Llama-3.1-8B config.json "
        "(rope_scaling 'llama3', factor 8 over 8192); Llama 3 paper arXiv:2407.21783, Sec. 3.4.2",
    ),
    "DeepSeek-V3": Documented(
        "DeepSeek-V3", 128 * 1024, "2024-12-27",
        "DeepSeek-AI, DeepSeek-V3 Technical Report, arXiv:2412.19437, Sec. 4.3 (YaRN 4K -> 32K "
        "-> 128K)",
    ),
}  # fmt: skip

#: Gemini 1.5's needle-in-a-haystack recall up to 1M tokens (text), a lower bound.
GEMINI_RECALL = Documented(
    "Gemini 1.5 Pro, text needle-in-a-haystack recall up to 1M tokens", 0.99, "2024-03-08",
    "Gemini Team, Gemini 1.5 report, arXiv:2403.05530, abstract "
    "and Sec. 1 ('near-perfect' recall, above 99 %)",
)  # fmt: skip


def _context_check(label: str, stated: float, key: str) -> Check:
    """The text's context length against the documented one (ratio rule)."""
    fact = CONTEXTS[key]
    return Check(label, stated, fact.value, "ratio", fact.cite())


# --- textbook: the opening ------------------------------------------------------------------


def _double_context() -> Claim:
    model, n, d = "Llama-2-7B", 4096, 4096
    attention = cost.attention_matmul_flops(2 * n, d) / cost.attention_matmul_flops(n, d)
    whole = cost.prefill_flops(model, 2 * n) / cost.prefill_flops(model, n)
    return Claim(
        id="double_context_4x",
        source=TEXTBOOK,
        where="opening; again as the first consequence in 'Why this matters' and in the takeaways",
        claim="Self-attention scales as the square of n: double the context, quadruple its cost.",
        stated="4x",
        recomputed=(
            f"attention matmuls {n} -> {2 * n}: {attention:.2f}x (beside it, a whole {model} "
            f"forward: {whole:.2f}x)"
        ),
        assumption="FLOPs of Q Kᵀ and P V, 4·n²·d per layer; the whole model for comparison",
        reference="cost.attention_matmul_flops; cost.prefill_flops for the whole model",
        parts=(_one("attention cost, n -> 2n", 4.0, attention, "ratio"),),
        correction=(
            "Exact for attention, which is what the sentence is about. A whole model also "
            "pays projections and FFN that grow 2x per doubling and dominate below the "
            f"crossover, so {model} pays {whole:.1f}x at {n} -> {2 * n}; 4x is its limit at "
            "n far above the crossover."
        ),
    )


def _redesign() -> Claim:
    factor = 10**6 / 8000
    attention = cost.attention_matmul_flops(10**6, 4096) / cost.attention_matmul_flops(8000, 4096)
    return Claim(
        id="redesign_not_tweak",
        source=TEXTBOOK,
        where="opening",
        claim=(
            "Going from an 8,000-token chatbot to a million-token "
            "system is a redesign, not a tweak."
        ),
        stated="a redesign",
        recomputed=f"{factor:.0f}x the tokens, {attention:,.0f}x the attention FLOPs per layer",
        assumption="attention matmuls only",
        reference="cost.attention_matmul_flops",
        not_checkable=(
            "not checkable, because 'redesign' versus 'tweak' is a judgement, not a quantity; "
            "the factor it rests on is shown"
        ),
    )


def _scores_8k() -> Claim:
    scores = cost.score_count(8000)
    return Claim(
        id="scores_8k",
        source=TEXTBOOK,
        where="opening",
        claim="An 8,000-token context means 64 million query-key scores per head and layer.",
        stated="64 million",
        recomputed=f"{_count(scores)} = 8000²  ({cost.score_count(8192) / 1e6:.1f} M for 8192)",
        assumption="one n x n matrix per head per layer",
        reference="cost.score_count",
        parts=(_one("scores per head and layer", 64e6, scores, "ratio"),),
    )


def _million_advertised() -> Claim:
    gemini = CONTEXTS["Gemini 1.5 Pro"]
    claude = CONTEXTS["Claude Sonnet 4 (1M beta)"]
    return Claim(
        id="million_gemini_claude",
        source=TEXTBOOK,
        where="opening",
        claim=(
            "A million-token context is what Gemini 1.5 advertises "
            "and what Claude is creeping towards."
        ),
        stated="Gemini 1.5: 1M",
        recomputed=(
            f"Gemini 1.5 Pro: {gemini.value:,.0f} tokens ({gemini.date}); Claude reached 1M "
            f"with Sonnet 4 in beta ({claude.date})"
        ),
        assumption="announced context lengths",
        reference=f"{gemini.cite()}; {claude.cite()}",
        parts=((_context_check("Gemini 1.5 context", 1e6, "Gemini 1.5 Pro"),),),
    )


def _scores_1m() -> Claim:
    n_bytes = cost.score_matrix_bytes(10**6, "float16")
    return Claim(
        id="scores_1m_2tb",
        source=TEXTBOOK,
        where="opening",
        claim="At a million tokens one head's score matrix has 10¹² entries: 2 TB in fp16.",
        stated="10¹² scores, 2 TB",
        recomputed=f"{cost.score_count(10**6):.3g} scores, {_bytes(n_bytes)}",
        assumption="2 bytes per fp16 score; one head, one layer",
        reference="cost.score_count, cost.score_matrix_bytes",
        parts=(
            _one("scores", 1e12, cost.score_count(10**6), "ratio"),
            _one("bytes in fp16", 2e12, n_bytes, "ratio"),
        ),
    )


def _scores_1m_no_device() -> Claim:
    n_bytes = cost.score_matrix_bytes(10**6, "float16")
    biggest = max(
        (get_hardware(name) for name in ("A100-SXM4-80GB", "H100-SXM5-80GB", "H200-SXM-141GB")),
        key=lambda hw: hw.memory_bytes,
    )
    ratio = n_bytes / biggest.memory_bytes
    return Claim(
        id="scores_1m_no_device",
        source=TEXTBOOK,
        where="opening",
        claim="No accelerator today could hold that single 10¹²-entry matrix.",
        stated="more than any device holds",
        recomputed=(
            f"{_bytes(n_bytes)} is {ratio:.0f}x the {biggest.name}'s {_bytes(biggest.memory_bytes)}"
        ),
        assumption="largest single-GPU memory among the presets",
        reference="presets (NVIDIA datasheets); cost.score_matrix_bytes",
        parts=(_one("matrix bytes / largest device memory", 1.0, ratio, "more than"),),
    )


# --- textbook: the cost -----------------------------------------------------------------------


def _matmul_flops() -> Claim:
    n = d = 4096
    flops = cost.matmul_flops(n, d, n)
    return Claim(
        id="matmul_n2d",
        source=TEXTBOOK,
        where="The cost",
        claim="Each of the two attention matmuls costs roughly n²·d floating-point operations.",
        stated="n²·d FLOPs per matmul",
        recomputed=f"2·n²·d FLOPs (= n²·d multiply-adds); n = d = 4096: {flops:.3g} FLOPs",
        assumption="FLOPs = 2 x multiply-adds",
        reference="cost.matmul_flops",
        parts=(_one("FLOPs of Q Kᵀ at n = d = 4096", float(n * n * d), flops, "ratio"),),
        correction=(
            "n²·d counts multiply-adds. In FLOPs each matmul is 2·n²·d, and QKᵀ plus PV "
            "together 4·n²·d per layer (summed over heads, since heads x head_dim = d)."
        ),
    )


def _matmuls_dominate() -> Claim:
    model, n = get_model("Llama-2-7B"), 4096
    attention = cost.attention_matmul_flops(n, model.d_model)
    vs_softmax = attention / cost.softmax_flops(n, model.heads)
    vs_projections = attention / cost.projection_flops(n, model.d_model, model.heads)
    return Claim(
        id="matmuls_dominate",
        source=TEXTBOOK,
        where="The cost",
        claim=(
            "Of the steps of a head (three projections, S = QKᵀ, softmax, PV), the two "
            "attention matmuls dominate."
        ),
        stated="the two matmuls dominate",
        recomputed=(
            f"{model.name}, n = {n}: {vs_softmax:.0f}x the softmax's FLOPs, "
            f"{vs_projections:.2f}x the Q/K/V/O projections' (n / 2d)"
        ),
        assumption="5 FLOPs per score for the softmax; MHA projections 8·n·d²",
        reference="cost.attention_matmul_flops, cost.softmax_flops, cost.projection_flops",
        parts=(
            (
                Check("matmuls / softmax", 1.0, vs_softmax, "more than"),
                Check("matmuls / projections", 1.0, vs_projections, "more than"),
            ),
        ),
        correction=(
            "They dwarf the softmax (0.8·head_dim times its FLOPs), but they overtake the "
            f"projections the same paragraph lists only at n > 2d ({2 * model.d_model:,} "
            "tokens here)."
        ),
    )


def _per_layer_big_o() -> Claim:
    n, d, heads = 4096, 4096, 32
    in_n = _exponent(lambda x: cost.attention_matmul_flops(x, d), n)
    in_d = _exponent(lambda x: cost.attention_matmul_flops(n, x), d)
    memory = _exponent(lambda x: cost.score_matrix_bytes(x, heads=heads), n)
    return Claim(
        id="per_layer_o_n2d",
        source=TEXTBOOK,
        where="The cost; first takeaway",
        claim="Per layer attention is O(n²·d) in compute and O(n²) in memory for the scores.",
        stated="O(n²·d), O(n²)",
        recomputed=(
            f"growth exponents: compute {in_n:.2f} in n and {in_d:.2f} in d; score memory "
            f"{memory:.2f} in n"
        ),
        assumption="exponent = log2(F(2x) / F(x)), naive attention",
        reference="cost.attention_matmul_flops, cost.score_matrix_bytes",
        parts=(
            _one("compute, exponent in n", 2.0, in_n, "exponent"),
            _one("compute, exponent in d", 1.0, in_d, "exponent"),
            _one("score memory, exponent in n", 2.0, memory, "exponent"),
        ),
    )


def _forward_big_o() -> Claim:
    model, n = "Llama-2-7B", 4096
    attention = _exponent(lambda x: cost.attention_matmul_flops(x, 4096, causal=True), n)
    whole = _exponent(lambda x: cost.prefill_flops(model, x), n)
    peak = _exponent(lambda x: cost.forward_peak_score_bytes(x, 32), n)
    return Claim(
        id="forward_o_ln2d",
        source=TEXTBOOK,
        where="The cost",
        claim=(
            "A forward pass through L layers costs O(L·n²·d) "
            "FLOPs, with O(n²) peak memory per layer."
        ),
        stated="O(L·n²·d), O(n²)",
        recomputed=(
            f"exponent in n near {n}: attention term {attention:.2f}, whole {model} forward "
            f"{whole:.2f}; peak score memory {peak:.2f}"
        ),
        assumption=f"{model}, causal prefill FLOPs; naive attention's S and P for the peak",
        reference="cost.prefill_flops, cost.forward_peak_score_bytes",
        parts=(
            (
                Check("FLOPs, the attention term", 2.0, attention, "exponent"),
                Check("FLOPs, the whole forward", 2.0, whole, "exponent"),
            ),
            _one("peak memory per layer", 2.0, peak, "exponent"),
        ),
        correction=(
            "The whole forward is O(L·(n²·d + n·d²)): below the crossover the n·d² of the "
            "projections and FFN dominates, and it grows almost linearly there."
        ),
    )


def _backward_keeps_p() -> Claim:
    n, heads = 4096, 32
    one = cost.score_matrix_bytes(n, "bfloat16", heads=heads)
    kept = cost.saved_for_backward_bytes(n, heads, 1, "bfloat16") / one
    peak = cost.forward_peak_score_bytes(n, heads, "bfloat16") / one
    return Claim(
        id="backward_materialise_twice",
        source=TEXTBOOK,
        where="The cost (training)",
        claim=(
            "Backpropagation needs the score matrix again; naive implementations materialise "
            "it twice and store the softmax probabilities for the chain rule."
        ),
        stated="twice; P stored",
        recomputed=(
            f"n x n tensors per head: {peak:.0f} alive at the forward peak (S and P), "
            f"{kept:.0f} kept for the backward (P)"
        ),
        assumption="naive bf16 attention under autograd (the course's), no dropout",
        reference="cost.forward_peak_score_bytes; cost.saved_for_backward_bytes (checked "
        "against autograd's saved tensors in tests/test_cost.py)",
        parts=(
            _one("probabilities kept for the backward (copies)", 1.0, kept, "ratio"),
            (
                Check("copies alive at the forward peak", 2.0, peak, "ratio"),
                Check("copies kept for the backward", 2.0, kept, "ratio"),
            ),
        ),
        correction=(
            "The backward needs P, and autograd keeps exactly that; S is alive next to P "
            "only during the forward's softmax. Mixed-precision code that runs the softmax "
            "in fp32 keeps a second copy (notebook 02, section 3)."
        ),
    )


def _training_70gb() -> Claim:
    n, layers, heads = 32768, 32, 32
    one_head = cost.score_matrix_bytes(n, "float16", layers=layers)
    kept = cost.saved_for_backward_bytes(n, heads, layers, "float16")
    kept_dropout = cost.saved_for_backward_bytes(n, heads, layers, "float16", dropout=True)
    peak = cost.forward_peak_score_bytes(n, heads, "float16")
    return Claim(
        id="training_70gb",
        source=TEXTBOOK,
        where="The cost (training)",
        claim=(
            "Training a 32-layer model on one 32,768-token example keeps about "
            "32 x 32768² x 2 B ≈ 70 GB of attention activations."
        ),
        stated="≈ 70 GB",
        recomputed=(
            f"the product as written: {_bytes(one_head)}; with 32 heads per layer autograd "
            f"keeps P for each: {_bytes(kept)}"
        ),
        assumption=(
            "32 layers x 32 heads (Llama-2-7B shape), fp16, batch 1, naive attention; "
            "autograd saves P (softmax output), not S"
        ),
        reference="cost.saved_for_backward_bytes",
        parts=(_one("bytes kept for the backward", 70e9, kept, "ratio"),),
        correction=(
            f"32 x 32768² x 2 B = {_bytes(one_head)} is ONE head per layer. Autograd keeps "
            f"the n x n probabilities of every head: 32 layers x 32 heads x 32768² x 2 B = "
            f"{_bytes(kept)}; with dropout (bool mask + dropped copy, 5 B per score) "
            f"{_bytes(kept_dropout)}. The forward pass alone peaks at S + P of one layer: "
            f"2 x 32 x 32768² x 2 B = {_bytes(peak)}."
        ),
    )


def _pre_flash_remedies() -> Claim:
    return Claim(
        id="pre_flash_remedies",
        source=TEXTBOOK,
        where="The cost (training)",
        claim=(
            "Before FlashAttention, long-context training needed drastic gradient "
            "checkpointing, model parallelism, or a clipped context."
        ),
        stated="three remedies",
        recomputed="—",
        assumption="—",
        reference="—",
        not_checkable=(
            "not checkable, because it describes what past projects chose to do, with no "
            "figure; the memory it responds to is the training_70gb claim"
        ),
    )


def _a100_bandwidth() -> Claim:
    bandwidth = get_hardware("A100-SXM4-80GB").bandwidth_bytes_per_s
    return Claim(
        id="a100_bandwidth",
        source=TEXTBOOK,
        where="The cost (constants)",
        claim="An A100 80GB SXM has about 2.0 TB/s of HBM bandwidth.",
        stated="~2.0 TB/s",
        recomputed=f"{bandwidth / 1e12:.3f} TB/s",
        assumption="NVIDIA A100 datasheet, 80GB SXM",
        reference="presets: NVIDIA A100 Tensor Core GPU datasheet, 80GB SXM column (2,039 GB/s)",
        parts=(_one("HBM bandwidth", 2.0e12, bandwidth, "ratio"),),
    )


def _score_tensor_2gb() -> Claim:
    n_bytes = cost.score_matrix_bytes(32768, "float16")
    return Claim(
        id="score_tensor_2gb",
        source=TEXTBOOK,
        where="The cost (constants)",
        claim="One 32,768 x 32,768 fp16 score tensor is about 2 GB.",
        stated="≈ 2 GB",
        recomputed=_bytes(n_bytes),
        assumption="one head, one layer, 2 bytes per score",
        reference="cost.score_matrix_bytes",
        parts=(_one("bytes", 2e9, n_bytes, "ratio"),),
    )


def _a100_30ms() -> Claim:
    hw = get_hardware("A100-SXM4-80GB")
    n_bytes = cost.score_matrix_bytes(32768, "float16")
    seconds = cost.transfer_time_s(2 * n_bytes, hw.bandwidth_bytes_per_s)
    implied_bandwidth = 2 * n_bytes / 30e-3
    return Claim(
        id="a100_30ms",
        source=TEXTBOOK,
        where="The cost (constants)",
        claim="Writing that tensor to HBM and reading it back once takes the A100 about 30 ms.",
        stated="≈ 30 ms",
        recomputed=_time(seconds),
        assumption="one write + one read at the full 2,039 GB/s",
        reference="cost.transfer_time_s with the A100 preset",
        parts=(_one("seconds", 30e-3, seconds, "ratio"),),
        correction=(
            f"2 x {cost.format_bytes(n_bytes)} / 2,039 GB/s = {_time(seconds)}, "
            f"about {30e-3 / seconds:.0f}x less than stated; 30 ms would mean a bandwidth of "
            f"{cost.format_bytes(implied_bandwidth)}/s. Even at 70 % of peak it is ~3 ms."
        ),
    )


def _softmax_passes() -> Claim:
    n = 4096
    matrix = cost.score_matrix_bytes(n, "float16")
    # naive traffic is write S, read S, write P, read P; the softmax is the middle two
    softmax_passes = cost.naive_attention_traffic_bytes(n, 1, dtype="float16") / 2 / matrix
    return Claim(
        id="softmax_read_modify_write",
        source=TEXTBOOK,
        where="The cost (constants)",
        claim=(
            "The softmax adds a constant of its own: it reads and "
            "rewrites the matrix, not one pass."
        ),
        stated="more than one pass",
        recomputed=(
            f"an unfused softmax moves {softmax_passes:.0f} matrices' worth (read S, write P)"
        ),
        assumption="standard unfused attention (the FlashAttention paper's Algorithm 0)",
        reference="cost.naive_attention_traffic_bytes (write S, read S, write P, read P)",
        parts=(_one("matrices moved by the softmax", 1.0, softmax_passes, "more than"),),
    )


def _bandwidth_bill() -> Claim:
    model, n = get_model("Llama-2-7B"), 32768
    hw = get_hardware("A100-SXM4-80GB")
    traffic = cost.naive_attention_traffic_bytes(n, model.heads, model.layers, "float16")
    traffic_s = cost.transfer_time_s(traffic, hw.bandwidth_bytes_per_s)
    compute_s = cost.compute_time_s(
        cost.prefill_flops(model, n, causal=False), cost.peak_flops_per_s(hw, "float16")
    )
    ratio = traffic_s / compute_s
    return Claim(
        id="bandwidth_bill",
        source=TEXTBOOK,
        where="The cost (constants)",
        claim=(
            "Long-context training before FlashAttention was unreasonable because of the "
            "bandwidth bill, not the maths."
        ),
        stated="bandwidth, not compute",
        recomputed=(
            f"{model.name}, n = {n}, one forward on an A100: moving the scores takes "
            f"{_time(traffic_s)}, the matmuls {_time(compute_s)} at peak ({ratio:.1f}x)"
        ),
        assumption="naive fp16 attention, forward only, both at peak rates",
        reference="cost.naive_attention_traffic_bytes, cost.transfer_time_s, cost.prefill_flops",
        parts=(_one("score traffic time / matmul time", 1.0, ratio, "more than"),),
        correction=(
            "The bandwidth bill is indeed the larger one, but the first wall is capacity: the "
            "scores kept for the backward (2.2 TB, training_70gb) fit on no device at all."
        ),
    )


# --- textbook: why this matters ------------------------------------------------------------


def _oom_at_8k() -> Claim:
    growth = cost.score_matrix_bytes(8192, "float16") / cost.score_matrix_bytes(4096, "float16")
    return Claim(
        id="oom_at_8k",
        source=TEXTBOOK,
        where="Why this matters",
        claim="A model comfortable at 4K tokens runs out of memory at 8K and of patience at 16K.",
        stated="fits at 4K, OOM at 8K",
        recomputed=f"score memory grows {growth:.0f}x per doubling of n",
        assumption="—",
        reference="cost.score_matrix_bytes",
        not_checkable=(
            "not checkable, because the text names no model, device or implementation; "
            "only the 4x per doubling is arithmetic, and it is shown"
        ),
    )


def _early_512() -> Claim:
    gpt2 = get_model("GPT-2-small")
    return Claim(
        id="early_512",
        source=TEXTBOOK,
        where="Why this matters",
        claim=(
            "The early Transformers of 2017-2019 stayed at 512 "
            "tokens, because of the quadratic cost."
        ),
        stated="512 tokens",
        recomputed=(
            f"GPT (2018): {CONTEXTS['GPT (2018)'].value:.0f}; BERT (2018): "
            f"{CONTEXTS['BERT'].value:.0f}; GPT-2 (2019): {gpt2.context}"
        ),
        assumption="published training contexts",
        reference=(
            f"{CONTEXTS['GPT (2018)'].cite()}; {CONTEXTS['BERT'].cite()}; presets: {gpt2.source}"
        ),
        parts=(
            (
                _context_check("GPT", 512, "GPT (2018)"),
                _context_check("BERT", 512, "BERT"),
                Check("GPT-2", 512, gpt2.context, "ratio", gpt2.source),
            ),
        ),
        correction=(
            "BERT and GPT used 512, and BERT's paper gives the quadratic cost as its reason "
            "(Sec. A.2); GPT-2 already used 1024 in 2019. There is no model called BERT-long."
        ),
    )


def _ffn_more_parameters() -> Claim:
    names = ("GPT-2-small", "GPT-3-175B", "Llama-2-7B", "Llama-3-8B", "Llama-3-70B", "Mistral-7B")

    def ratio(name: str) -> float:
        m = get_model(name)
        attention = 2 * m.d_model**2 + 2 * m.d_model * m.kv_heads * m.head_dim
        return (3 if m.gated_ffn else 2) * m.d_model * m.d_ff / attention

    ratios = {name: ratio(name) for name in names}
    return Claim(
        id="ffn_more_parameters",
        source=TEXTBOOK,
        where="Why this matters",
        claim="FFNs typically have more parameters than attention.",
        stated="FFN > attention",
        recomputed=", ".join(f"{name} {r:.1f}x" for name, r in ratios.items()),
        assumption="weight matrices per layer: W_q, W_k, W_v, W_o against the FFN's",
        reference=(
            "presets (published config.json files); the parameter formula of cost.parameter_count"
        ),
        parts=tuple(
            _one(f"{name}: FFN / attention weights", 1.0, r, "more than")
            for name, r in ratios.items()
        ),
    )


def _ffn_linear() -> Claim:
    n, d = 4096, 4096
    in_n = _exponent(lambda x: cost.ffn_flops(x, d, 4 * d), n)
    in_d = _exponent(lambda x: cost.ffn_flops(n, x, 4 * x), d)
    return Claim(
        id="ffn_o_nd2",
        source=TEXTBOOK,
        where="Why this matters",
        claim="The FFN costs O(n·d²): linear in n.",
        stated="O(n·d²)",
        recomputed=f"growth exponents: {in_n:.2f} in n, {in_d:.2f} in d (d_ff = 4d)",
        assumption="2-matrix FFN, d_ff = 4d",
        reference="cost.ffn_flops",
        parts=(
            _one("exponent in n", 1.0, in_n, "exponent"),
            _one("exponent in d", 2.0, in_d, "exponent"),
        ),
    )


def _crossover_n_equals_d() -> Claim:
    d = 4096
    vs_ffn = cost.attention_ffn_crossover_n(d, 4 * d)
    vs_layer = cost.attention_ffn_crossover_n(d, 4 * d, include_projections=True)
    causal = cost.attention_ffn_crossover_n(d, 4 * d, causal=True)
    causal_layer = cost.attention_ffn_crossover_n(d, 4 * d, include_projections=True, causal=True)
    llama = get_model("Llama-2-7B")
    llama_ffn = cost.attention_ffn_crossover_n(llama.d_model, llama.d_ff, gated=True)
    return Claim(
        id="crossover_n_d",
        source=TEXTBOOK,
        where="Why this matters; second takeaway",
        claim="Attention's FLOPs overtake the feed-forward layer's at about n = d.",
        stated="n ≈ d",
        recomputed=(
            f"n = {vs_ffn / d:.0f}d vs the FFN, {vs_layer / d:.0f}d vs FFN + Q/K/V/O "
            f"projections ({causal / d:.0f}d and {causal_layer / d:.0f}d with causal masking)"
        ),
        assumption="d_ff = 4d, 2-matrix FFN, multi-head attention, FLOPs of matmuls only",
        reference="cost.attention_ffn_crossover_n",
        parts=(_one("crossover n against the FFN", float(d), vs_ffn, "ratio"),),
        correction=(
            "Attention: 4·n²·d. FFN: 2 matmuls x 2·n·d·d_ff = 4·n·d·d_ff. Equal at n = d_ff "
            "= 4d. Adding the projections (8·n·d²): n = d_ff + 2d = 6d. Causal masking halves "
            f"attention and doubles both. Llama-2-7B (SwiGLU, d_ff = 11008): {llama_ffn:,.0f} "
            f"tokens = {llama_ffn / llama.d_model:.1f}d against its FFN. Kaplan et al. 2020 "
            "(Sec. 2.1) put the context-dependent share of compute at n_ctx ≈ 12·d_model; "
            "'n < d' comes from Vaswani et al. 2017 (Sec. 4), who compare self-attention with "
            "recurrent layers, a different question."
        ),
    )


def _frontier_two_orders() -> Claim:
    n = 10**6
    gpt3 = get_model("GPT-3-175B")
    dense = cost.attention_ffn_ratio(n, gpt3.d_model, gpt3.d_ff)
    dense_layer = cost.attention_ffn_ratio(n, gpt3.d_model, gpt3.d_ff, include_projections=True)
    moe = get_moe_model("DeepSeek-V3")
    sparse_ffn = cost.moe_attention_ffn_ratio(moe, n)
    sparse_layer = cost.moe_attention_ffn_ratio(moe, n, include_projections=True)
    return Claim(
        id="frontier_100x",
        source=TEXTBOOK,
        where="Why this matters",
        claim=(
            "With d ≈ 12,000 and n ≈ 10⁶, attention outweighs the FFN by two orders of magnitude."
        ),
        stated="≈ 100x",
        recomputed=(
            f"dense GPT-3 shape (d = 12,288, d_ff = 4d): {dense:.1f}x vs the FFN, "
            f"{dense_layer:.1f}x vs FFN + projections; MoE DeepSeek-V3 shape (8 + 1 experts of "
            f"2048, MLA): {sparse_ffn:.0f}x vs its FFN, {sparse_layer:.0f}x vs FFN + MLA "
            "projections (non-causal; causal halves all four)"
        ),
        assumption="FLOPs per layer at n = 10⁶, non-causal, as the sentence compares them",
        reference=(
            "cost.attention_ffn_ratio (Brown et al. 2020, Table 2.1); cost.moe_attention_ffn_ratio "
            "(HF deepseek-ai/DeepSeek-V3 config.json)"
        ),
        parts=(
            (
                Check("dense frontier shape (GPT-3)", 100.0, dense, "ratio"),
                Check(
                    "mixture-of-experts frontier shape (DeepSeek-V3)", 100.0, sparse_ffn, "ratio"
                ),
            ),
        ),
        correction=(
            "It depends on the architecture. Dense: n / d_ff = 10⁶ / 49,152 ≈ 20, one order "
            f"of magnitude. DeepSeek-V3's 128 MLA heads of width 192 (keys) and 128 (values) "
            f"cost {cost.mla_attention_matmul_flops(1, moe):,.0f} FLOPs per token and key "
            f"against GPT-3's {cost.attention_matmul_flops(1, gpt3.d_model):,.0f}, while its "
            f"9 active experts cost {cost.moe_ffn_flops_per_token(moe) / 1e6:,.0f} MFLOPs per "
            f"token against GPT-3's dense "
            f"{cost.ffn_flops(1, gpt3.d_model, gpt3.d_ff) / 1e6:,.0f} MFLOPs: "
            f"together ≈ {sparse_ffn:.0f}x, two orders of magnitude. (Its d is 7,168, not "
            "12,000: the sentence's d describes a dense model.)"
        ),
    )


def _chicken_and_egg() -> Claim:
    return Claim(
        id="data_chicken_and_egg",
        source=TEXTBOOK,
        where="Why this matters",
        claim=(
            "Without affordable long-context training a model never sees book-length structure; "
            "long-context teams broke this only by combining all three escape routes."
        ),
        stated="all three routes combined",
        recomputed="—",
        assumption="—",
        reference="—",
        not_checkable=(
            "not checkable, because the training recipes of most long-context models are not "
            "published, and the first half is an argument, not a figure"
        ),
    )


# --- textbook: the three escape routes -------------------------------------------------------


def _flash_memory_compute() -> Claim:
    n, head_dim, heads = 4096, 128, 32
    tiled = _exponent(lambda x: tiling.tiled_attention_peak_bytes(x, head_dim, "float16"), n)
    peak_vs_matrix = tiling.tiled_attention_peak_bytes(
        n, head_dim, "float16"
    ) / cost.score_matrix_bytes(n, "float16")
    compute = _exponent(lambda x: cost.attention_matmul_flops(x, heads * head_dim), n)
    return Claim(
        id="flash_memory_compute",
        source=TEXTBOOK,
        where="The three escape routes (FlashAttention)",
        claim=(
            "FlashAttention computes exact attention without materialising the n x n matrix: "
            "memory O(n), compute still O(n²·d)."
        ),
        stated="O(n) memory, O(n²·d) compute",
        recomputed=(
            f"tiled peak per head at n = {n}: {peak_vs_matrix:.2f} of one n x n matrix, growth "
            f"exponent {tiled:.2f}; FLOPs exponent {compute:.2f} (the same FLOPs as naive)"
        ),
        assumption="the course's tiled attention (notebook 03), key blocks of 256, fp16",
        reference="tiling.tiled_attention_peak_bytes (matches the measured allocator peak); "
        "cost.attention_matmul_flops",
        parts=(
            _one("peak / one n x n matrix", 1.0, peak_vs_matrix, "less than"),
            _one("memory, exponent in n", 1.0, tiled, "exponent"),
            _one("compute, exponent in n", 2.0, compute, "exponent"),
        ),
    )


def _flash_speedup_checks(stated: tuple[float, float], keys: Iterable[str]) -> tuple[Check, ...]:
    return tuple(
        Check(SPEEDUPS[key].label, stated, SPEEDUPS[key].value, "range", SPEEDUPS[key].cite())
        for key in keys
    )


def _fa2_note() -> str:
    peak = get_hardware("A100-SXM4-80GB").peak_flops_per_s["bfloat16"]
    return (
        f"FA-2 is another ≈ {FA2_OVER_FA1.value:.0f}x over FA-1 and reaches "
        f"{FA2_PEAK_FLOPS.value / 1e12:.0f} TFLOP/s forward + backward on an A100, "
        f"{FA2_PEAK_FLOPS.value / peak:.1%} of its {peak / 1e12:.0f} TFLOP/s "
        f"({FA2_PEAK_FLOPS.source})"
    )


_OWN_MEASUREMENT = (
    "Our own GPU measurement is the open part: notebook 04's benchmark "
    "(python -m attn_course.bench flash) records it; no GPU record is committed yet, and a "
    "CPU record says nothing about a GPU."
)


def _flash_2_4x() -> Claim:
    keys = ("fa1_summary_low", "fa1_summary_high", "gpt2", "lra", "bert")
    return Claim(
        id="flash_2_4x",
        source=TEXTBOOK,
        where="The three escape routes (FlashAttention)",
        claim="FlashAttention cuts wall-clock time by a factor of two to four on real GPUs.",
        stated="2-4x",
        recomputed="; ".join(f"{SPEEDUPS[k].label}: {SPEEDUPS[k].value:g}x" for k in keys),
        assumption="published measurements, each with its GPU and its baseline",
        reference=f"{_FA1}; {_FA2}",
        parts=(_flash_speedup_checks((2.0, 4.0), keys),),
        correction=(
            "2-4x is the authors' own summary and matches the attention-bound runs (GPT-2 "
            "3x, long-range arena 2.4x, on A100s); a whole BERT-large training run at 512 "
            f"tokens gained 15 % against the MLPerf record. {_fa2_note()}. {_OWN_MEASUREMENT}"
        ),
    )


def _linear_attention() -> Claim:
    n, head_dim = 4096, 64
    in_n = _exponent(lambda x: linear.linear_attention_flops(x, head_dim), n)
    in_d = _exponent(lambda x: linear.linear_attention_flops(n, x), head_dim)
    win = linear.softmax_attention_flops(16 * head_dim, head_dim) / linear.linear_attention_flops(
        16 * head_dim, head_dim
    )
    return Claim(
        id="linear_o_nd2",
        source=TEXTBOOK,
        where="The three escape routes (approximate)",
        claim=(
            "Linear and kernel attention cost O(n·d²) instead of O(n²·d): a genuine win for n ≫ d."
        ),
        stated="O(n·d²); a win for n ≫ d",
        recomputed=(
            f"per head, feature count m = head_dim = {head_dim}: exponent {in_n:.2f} in n, "
            f"{in_d:.2f} in head_dim; at n = 16·head_dim softmax attention does {win:.1f}x "
            "the FLOPs"
        ),
        assumption="linear attention with m = head_dim features, non-causal",
        reference="linear.linear_attention_flops, linear.softmax_attention_flops",
        parts=(
            _one("exponent in n", 1.0, in_n, "exponent"),
            _one("exponent in d", 2.0, in_d, "exponent"),
            _one("softmax / linear FLOPs at n = 16 d", 1.0, win, "more than"),
        ),
    )


def _linformer() -> Claim:
    n, k = 4096, 256
    fraction = cost.score_count(n, n_k=k) / cost.score_count(n)
    return Claim(
        id="linformer_projects_kv",
        source=TEXTBOOK,
        where="The three escape routes (approximate)",
        claim="Linformer projects keys and values down (along the sequence, to k rows).",
        stated="fewer keys than tokens",
        recomputed=f"n = {n}, k = {k}: {fraction:.4f} of the n² scores",
        assumption="Linformer's projections E, F (k x n) applied to K and V",
        reference="Wang et al., Linformer, arXiv:2006.04768, Sec. 4 (E, F: k x n, k ≪ n); "
        "cost.score_count",
        parts=(_one("scores after projection / n²", 1.0, fraction, "less than"),),
    )


def _negative_kernel_estimates(kind: str, pairs: int = 512, head_dim: int = 16) -> float:
    """Fraction of random-feature estimates of exp(q·k) that come out negative.

    ``kind="positive"``: Performer's φ(x) = exp(W x - |x|²/2) / √m (FAVOR+); every product
    is positive. ``kind="trigonometric"``: exp(|q|²/2 + |k|²/2) · mean_w cos(w·(q - k)), the
    random Fourier features of the Gaussian kernel; the mean can be negative. m = head_dim.
    """
    generator = torch.Generator().manual_seed(0)
    q, k = (torch.randn(pairs, head_dim, generator=generator, dtype=torch.float64) for _ in "qk")
    w = linear.performer_projection(head_dim, head_dim, generator=generator, orthogonal=False)
    if kind == "positive":
        estimate = (linear.performer_features(q, w) * linear.performer_features(k, w)).sum(-1)
    elif kind == "trigonometric":
        scale = torch.exp(0.5 * ((q * q).sum(-1) + (k * k).sum(-1)))
        estimate = scale * torch.cos((q - k) @ w.T).mean(-1)
    else:
        raise ValueError(f"kind must be 'positive' or 'trigonometric', got {kind!r}")
    return float((estimate < 0).double().mean())


def _performer() -> Claim:
    positive = _negative_kernel_estimates("positive")
    trig = _negative_kernel_estimates("trigonometric")
    source = (
        "Choromanski et al., Rethinking Attention with Performers, arXiv:2009.14794, Sec. 2.3 "
        "(trigonometric features are unstable for softmax; FAVOR+ uses positive random features)"
    )
    return Claim(
        id="performer_features",
        source=TEXTBOOK,
        where="The three escape routes (approximate)",
        claim="Performer uses random Fourier features to approximate the softmax kernel.",
        stated="random Fourier features",
        recomputed=(
            f"negative estimates of exp(q·k): {trig:.0%} with sin/cos (Fourier) features, "
            f"{positive:.0%} with Performer's positive features"
        ),
        assumption="512 random (q, k) pairs, head_dim = features = 16, one draw of W",
        reference=f"{source}; linear.performer_features",
        parts=(
            _one(
                "approximates the softmax kernel with random features", True, True, "same", source
            ),
            _one(
                "the kind of features", "trigonometric (Fourier)", "positive (exp)", "same", source
            ),
        ),
        correction=(
            "Random features, yes; Fourier (sin/cos) ones, no. They can estimate a weight as "
            f"negative ({trig:.0%} of them here), so Performer's FAVOR+ uses positive features "
            "exp(w·x - |x|²/2) instead, which never do."
        ),
    )


def _recurrences() -> Claim:
    d, heads, n = 1024, 16, 4096
    rows = {
        context: {row["method"]: row for row in linear.decode_memory_table(context, d, heads)}
        for context in (n, 2 * n)
    }
    name = "RetNet / RWKV-6 (decayed linear recurrence)"
    growth = math.log2(rows[2 * n][name]["decode_bytes"] / rows[n][name]["decode_bytes"])
    return Claim(
        id="retnet_rwkv_recurrence",
        source=TEXTBOOK,
        where="The three escape routes (approximate)",
        claim="RetNet and RWKV recast attention as a linear recurrence.",
        stated="a recurrence: fixed-size state",
        recomputed=(
            f"decoding state per layer (d = {d}, {heads} heads): "
            f"{_bytes(rows[n][name]['decode_bytes'])} at {n} and at {2 * n} tokens "
            f"(growth exponent {growth:.2f}); a KV cache doubles"
        ),
        assumption="one head-sized state matrix per head",
        reference="linear.decode_memory_table; Sun et al., RetNet, arXiv:2307.08621, Sec. 2.1; "
        "Peng et al., RWKV, arXiv:2305.13048, Sec. 3",
        parts=(_one("state growth exponent in n", 0.0, growth, "exponent"),),
    )


def _mamba() -> Claim:
    n, d = 4096, 768
    scan = _exponent(lambda x: linear.mamba_scan_flops(x, d), n)
    source = (
        "Gu & Dao, Mamba, arXiv:2312.00752, Sec. 3.3 (selection makes the SSM time-varying, "
        "computed by a parallel scan) and Sec. 3.4 / Fig. 3 (a short causal conv1d, width 4)"
    )
    return Claim(
        id="mamba_scan",
        source=TEXTBOOK,
        where="The three escape routes (approximate)",
        claim="Mamba mixes tokens with selective convolutions in O(n log n) or O(n).",
        stated="selective convolutions, O(n log n) or O(n)",
        recomputed=f"selective scan FLOPs: growth exponent {scan:.2f} in n (O(n))",
        assumption="Mamba's defaults (expand 2, state 16)",
        reference=f"{source}; linear.mamba_scan_flops",
        parts=(
            _one("the block contains a convolution", True, True, "same", source),
            _one("the selective layer is a convolution", True, False, "same", source),
            _one("token mixing cost, exponent in n", 1.0, scan, "exponent"),
        ),
        correction=(
            "The Mamba block does have a short causal convolution, and O(n log n) is right for "
            "the long FFT convolutions of S4 or Hyena. But the selective SSM has input-dependent "
            "parameters, so it cannot be one convolution; it runs a parallel scan in O(n)."
        ),
    )


def _pattern_exponent(make: Callable[[int], sparse.SparsePattern], n: int) -> float:
    return _exponent(lambda x: float(make(x).dense_mask().sum()), n)


def _sparse_family() -> Claim:
    n = 1024
    longformer = _pattern_exponent(lambda x: sparse.longformer_pattern(x, 64, (0,)), n)
    bigbird = _pattern_exponent(lambda x: sparse.bigbird_pattern(x, 64), n)
    moe = get_moe_model("DeepSeek-V3")
    routed = _exponent(lambda x: cost.score_count(x, heads=moe.heads), n)
    return Claim(
        id="sparse_and_routing",
        source=TEXTBOOK,
        where="The three escape routes (sparse)",
        claim=(
            "Longformer, BigBird and the routing schemes of mixture-of-experts attention "
            "keep a softmax core but cut the score matrix to O(n log n) or O(n) entries."
        ),
        stated="O(n) entries",
        recomputed=(
            f"growth exponents of the allowed (query, key) pairs near n = {n}: Longformer "
            f"{longformer:.2f}, BigBird {bigbird:.2f}; DeepSeek-V3 (MoE) attention {routed:.2f}"
        ),
        assumption="Longformer radius 64 + 1 global token; BigBird blocks of 64 (1+1+1)",
        reference=(
            "sparse.longformer_pattern, sparse.bigbird_pattern (counted); DeepSeek-V3 report "
            "arXiv:2412.19437, Sec. 2.1 (routing chooses FFN experts; MLA attends to all keys)"
        ),
        parts=(
            _one("Longformer", 1.0, longformer, "exponent"),
            _one("BigBird", 1.0, bigbird, "exponent"),
            _one("mixture-of-experts routing", 1.0, routed, "exponent"),
        ),
        correction=(
            "Longformer and BigBird are linear. Mixture-of-experts routing sends each token to "
            "a few FFN experts; its attention stays dense (quadratic). Routing that sparsifies "
            "attention is another method (Routing Transformer, Roy et al. 2021: k-means "
            "clusters, O(n^1.5·d))."
        ),
    )


# --- textbook: KV cache for inference -------------------------------------------------------------


def _decode_no_cache() -> Claim:
    model, tokens = get_model("Llama-2-7B"), 2048
    d, layers = model.d_model, model.layers

    def attention_no_cache(t: int) -> float:
        return sum(layers * cost.attention_matmul_flops(c, d, causal=True) for c in range(1, t + 1))

    def attention_cached(t: int) -> float:
        return sum(layers * cost.decode_attention_flops(c, d) for c in range(1, t + 1))

    def whole(kv_cache: bool) -> Callable[[int], float]:
        return lambda t: cost.decode_total_flops(model, t, kv_cache=kv_cache)

    attn_none, attn_cache = (
        _exponent(attention_no_cache, tokens),
        _exponent(attention_cached, tokens),
    )
    whole_none, whole_cache = _exponent(whole(False), tokens), _exponent(whole(True), tokens)
    return Claim(
        id="decode_cache_t3_t2",
        source=TEXTBOOK,
        where="KV cache for inference",
        claim=(
            "Without a KV cache a generation of T tokens costs O(T³); with it O(T²·d) "
            "(per step O(t²·d) -> O(t·d))."
        ),
        stated="O(T³) -> O(T²·d)",
        recomputed=(
            f"growth exponents at T = {tokens}: attention {attn_none:.2f} -> {attn_cache:.2f}; "
            f"whole {model.name} {whole_none:.2f} -> {whole_cache:.2f}"
        ),
        assumption="FLOPs summed over T generated tokens, no prompt",
        reference=(
            "cost.attention_matmul_flops, cost.decode_attention_flops, cost.decode_total_flops"
        ),
        parts=(
            (
                Check("without a cache: attention", 3.0, attn_none, "exponent"),
                Check("without a cache: whole model", 3.0, whole_none, "exponent"),
            ),
            (
                Check("with a cache: attention", 2.0, attn_cache, "exponent"),
                Check("with a cache: whole model", 2.0, whole_cache, "exponent"),
            ),
        ),
        correction=(
            "True for the attention term (which is O(T³·d) without the cache: the units of "
            "the two sides differ by d). Every token also costs 2 FLOPs per weight, O(t·d²) "
            "per step without a cache and O(d²) with one; below n ≈ d those terms dominate, so "
            "a 7B model grows about T² without the cache and about T¹ with it here."
        ),
    )


def _kv_50gb() -> Claim:
    mha = cost.kv_cache_bytes(32, 32, 128, 100_000, dtype="float16")
    gqa = cost.model_kv_cache_bytes("Llama-3-8B", 100_000, dtype="float16")
    fp8 = cost.kv_cache_bytes(32, 32, 128, 100_000, dtype="float8")
    return Claim(
        id="kv_cache_50gb",
        source=TEXTBOOK,
        where="KV cache for inference",
        claim=(
            "A 32-layer, d = 4096 model holding 100K tokens of fp16 KV cache needs about "
            "50 GB (2·L·n·d·bytes)."
        ),
        stated="≈ 50 GB",
        recomputed=(
            f"{_bytes(mha)}; with GQA (Llama-3-8B, 8 KV heads) {_bytes(gqa)}; "
            f"fp8 cache {_bytes(fp8)}"
        ),
        assumption="multi-head attention (Llama-2-7B shape), 100,000 tokens, batch 1",
        reference="cost.kv_cache_bytes, cost.model_kv_cache_bytes",
        parts=(_one("cache bytes", 50e9, mha, "ratio"),),
        correction=(
            "2·L·n·d·bytes assumes every head keeps its own K and V. With grouped-query "
            "attention replace d by kv_heads·head_dim: Llama-3-8B stores 8 x 128 = 1024 "
            f"channels instead of 4096, so {_bytes(gqa)} (4x less)."
        ),
    )


def _kv_vs_weights() -> Claim:
    n = 100_000
    mha = cost.model_kv_cache_bytes("Llama-2-7B", n) / cost.weight_bytes("Llama-2-7B", "float16")
    gqa = cost.model_kv_cache_bytes("Llama-3-8B", n) / cost.weight_bytes("Llama-3-8B", "float16")
    overtakes = n / gqa  # the cache is linear in the context
    return Claim(
        id="kv_cache_vs_weights",
        source=TEXTBOOK,
        where="KV cache for inference",
        claim=(
            "At long context (the text's 100,000 tokens) the KV cache is the largest inference "
            "memory cost, larger than the weights themselves."
        ),
        stated="cache > weights",
        recomputed=f"cache / weights at {n:,} tokens, fp16: Llama-2-7B (MHA) {mha:.1f}x, "
        f"Llama-3-8B (GQA-8) {gqa:.2f}x",
        assumption="fp16 weights and cache, batch 1",
        reference="cost.model_kv_cache_bytes, cost.weight_bytes",
        parts=(
            (
                Check("multi-head attention (Llama-2-7B)", 1.0, mha, "more than"),
                Check("grouped-query attention (Llama-3-8B)", 1.0, gqa, "more than"),
            ),
        ),
        correction=(
            "True for multi-head attention. Most long-context models use GQA, and then at "
            "100K tokens the cache is still smaller than the weights (for Llama-3-8B it "
            f"overtakes them at {overtakes:,.0f} tokens, or with a batch of two)."
        ),
    )


def _kv_shrinkers() -> Claim:
    n = 100_000
    fp16 = cost.model_kv_cache_bytes("Llama-2-7B", n)
    fp8 = fp16 / cost.model_kv_cache_bytes("Llama-2-7B", n, dtype="float8")
    int4 = fp16 / cost.model_kv_cache_bytes("Llama-2-7B", n, dtype="int4")
    gqa = fp16 / cost.model_kv_cache_bytes("Llama-2-7B", n, kv_heads=8)
    mqa = fp16 / cost.model_kv_cache_bytes("Llama-2-7B", n, kv_heads=1)
    return Claim(
        id="kv_cache_shrinkers",
        source=TEXTBOOK,
        where="KV cache for inference",
        claim=(
            "Quantising the cache to FP8 or INT4 and sharing keys "
            "across heads (MQA, GQA) shrink it."
        ),
        stated="each shrinks the cache",
        recomputed=f"Llama-2-7B cache shrinks {fp8:.0f}x (fp8), {int4:.0f}x (int4), "
        f"{gqa:.0f}x (GQA-8), {mqa:.0f}x (MQA)",
        assumption="the same model with 8 or 1 KV heads; offloading moves bytes, not counted",
        reference="cost.model_kv_cache_bytes",
        parts=tuple(
            _one(label, 1.0, factor, "more than")
            for label, factor in (("fp8", fp8), ("int4", int4), ("GQA-8", gqa), ("MQA", mqa))
        ),
    )


def _bottlenecks() -> Claim:
    n, model = 32768, get_model("Llama-2-7B")
    state = cost.parameter_count(model) * ADAM_BYTES_PER_PARAMETER
    naive = cost.saved_for_backward_bytes(n, model.heads, model.layers, "bfloat16") / state
    # the tiled kernel keeps one logsumexp (fp32) per query row and head
    tiled = n * model.heads * model.layers * 4 / state
    cache = cost.model_kv_cache_bytes(model, 100_000) / cost.weight_bytes(model, "float16")
    gqa = cost.model_kv_cache_bytes("Llama-3-8B", 100_000) / cost.weight_bytes(
        "Llama-3-8B", "float16"
    )
    return Claim(
        id="training_scores_inference_cache",
        source=TEXTBOOK,
        where="KV cache for inference",
        claim="Training is bottlenecked by the score matrix; inference by the cache.",
        stated="scores (training), cache (inference)",
        recomputed=(
            f"training at {n}: kept scores / weights + Adam state = {naive:.0f}x naive, "
            f"{tiled:.1e}x with FlashAttention; inference at 100K: cache / weights = "
            f"{cache:.1f}x (MHA), {gqa:.2f}x (GQA)"
        ),
        assumption=f"Llama-2-7B, bf16; {ADAM_BYTES_PER_PARAMETER} B per parameter of "
        "mixed-precision Adam (ZeRO, arXiv:1910.02054, Sec. 3.1)",
        reference="cost.saved_for_backward_bytes, cost.parameter_count, cost.model_kv_cache_bytes",
        parts=(
            (
                Check("training, naive attention", 1.0, naive, "more than"),
                Check("training, FlashAttention", 1.0, tiled, "more than"),
            ),
            (
                Check("inference, multi-head attention", 1.0, cache, "more than"),
                Check("inference, grouped-query attention", 1.0, gqa, "more than"),
            ),
        ),
        correction=(
            "Each half holds for the setup the text has in mind (naive attention; multi-head "
            "caches) and fails for the usual one today: FlashAttention keeps O(n) per head, "
            "and GQA caches are smaller than the weights at 100K tokens."
        ),
    )


# --- textbook: prefill ----------------------------------------------------------------------------


def _ttft_200k() -> Claim:
    n, mfu = 200_000, 0.5
    small = cost.time_to_first_token("Llama-3-8B", "H100-SXM5-80GB", n, mfu=mfu)
    large = cost.time_to_first_token("Llama-3-70B", "H100-SXM5-80GB", n, mfu=mfu)
    large_weights = cost.weight_bytes("Llama-3-70B", "bfloat16")
    return Claim(
        id="ttft_200k_h100",
        source=TEXTBOOK,
        where="KV cache for inference (prefill)",
        claim=(
            "Prefilling a 200,000-token prompt (the text's example is a Claude prompt) on one "
            "H100 can take tens of seconds before the first token appears."
        ),
        stated="tens of seconds",
        recomputed=(
            f"Llama-3-8B: {_time(small.time_s)} ({cost.format_flops(small.flops)}); "
            f"Llama-3-70B: {_time(large.time_s)} ({cost.format_flops(large.flops)})"
        ),
        assumption="bf16 at 50 % MFU of 989 TFLOP/s dense, causal prefill, fused attention",
        reference="cost.time_to_first_token with the H100 preset",
        parts=(
            (
                Check("an 8B-class model", (10.0, 99.0), small.time_s, "range"),
                Check("a 70B-class model", (10.0, 99.0), large.time_s, "range"),
            ),
        ),
        correction=(
            "Holds for an 8B-class model. A 70B-class model needs minutes of compute, and "
            f"its bf16 weights ({_bytes(large_weights)}) do not fit one 80 GB H100 anyway. "
            "The size of the model the text has in mind is not public."
        ),
    )


def _prefill_attackers() -> Claim:
    model, n, chunk = get_model("Llama-3-8B"), 200_000, 2048
    naive = tiling.naive_hbm_bytes(n, model.head_dim)
    tiled = tiling.tiled_hbm_bytes_for_blocks(n, model.head_dim, 128, 64, causal=True)
    chunked = cost.chunked_prefill_flops(model, n, chunk) / cost.prefill_chunk_flops(model, 0, n)
    step = cost.prefill_chunk_flops(model, n - chunk, chunk) / cost.prefill_chunk_flops(model, 0, n)
    return Claim(
        id="chunked_prefill",
        source=TEXTBOOK,
        where="KV cache for inference (prefill)",
        claim=(
            "Chunked prefill, FlashAttention and kernel fusion all attack the time to first token."
        ),
        stated="each cuts the prefill",
        recomputed=(
            f"{model.name}, {n:,} tokens: FlashAttention moves {naive / tiled:.1f}x fewer "
            f"attention bytes (128 x 64 tiles); chunks of {chunk} do {chunked:.3f}x the FLOPs of "
            f"one pass, and the largest single step is {step:.2%} of the prefill"
        ),
        assumption="causal prefill, layers only (the logits do not depend on chunking)",
        reference=(
            "tiling.naive_hbm_bytes, "
            "tiling.tiled_hbm_bytes_for_blocks; cost.chunked_prefill_flops; "
            "Agrawal et al., Sarathi-Serve, arXiv:2403.02310 (chunks bound the iteration time)"
        ),
        parts=(
            _one("FlashAttention: naive / tiled attention bytes", 1.0, naive / tiled, "more than"),
            _one("chunked prefill: FLOPs / one pass", 1.0, chunked, "less than"),
        ),
        correction=(
            "FlashAttention and fusion cut the prefill's memory traffic. Chunked prefill does "
            "not make a long prompt's first token come sooner: it does the same FLOPs (and "
            "re-reads the cache per chunk). What it cuts is the stall it causes others: no "
            "single step is longer than one chunk, so decodes batched alongside keep flowing."
        ),
    )


def _prefill_unavoidable() -> Claim:
    model, n, cached = get_model("Llama-3-8B"), 200_000, 190_000

    def share_left(prefix: int) -> float:
        """Share of the prefill still to compute when ``prefix`` tokens are cached."""
        return cost.prefill_chunk_flops(model, prefix, n - prefix) / cost.prefill_chunk_flops(
            model, 0, n
        )

    fresh, with_prefix = share_left(0), share_left(cached)
    attention = _exponent(lambda x: cost.attention_matmul_flops(x, model.d_model, causal=True), n)
    growth = _exponent(lambda x: cost.prefill_chunk_flops(model, 0, x), n)
    crossover = cost.attention_ffn_crossover_n(
        model.d_model, model.d_ff, gated=True, causal=True, include_projections=True,
        heads=model.heads, kv_heads=model.kv_heads,
    ) / model.d_model  # fmt: skip
    return Claim(
        id="prefill_unavoidable",
        source=TEXTBOOK,
        where="KV cache for inference (prefill)",
        claim="The prefill is unavoidable, and it scales quadratically.",
        stated="unavoidable, quadratic",
        recomputed=(
            f"{model.name}, {n:,}-token prompt: {with_prefix:.1%} of the prefill is left when "
            f"its first {cached:,} tokens are cached; growth exponent near {n:,}: attention "
            f"{attention:.2f}, whole prefill {growth:.2f}"
        ),
        assumption="a prefix cache holds the earlier tokens' K and V (same model, same prefix)",
        reference=(
            "cost.prefill_chunk_flops; prefix caching: Kwon et al., vLLM, arXiv:2309.06180, Sec. "
            "4.4 (shared prefix); Zheng et al., SGLang RadixAttention, arXiv:2312.07104"
        ),
        parts=(
            (
                Check("share of the prefill to compute, new prompt", 1.0, fresh, "ratio"),
                Check("share of the prefill to compute, cached prefix", 1.0, with_prefix, "ratio"),
            ),
            (
                Check("growth exponent, attention", 2.0, attention, "exponent"),
                Check("growth exponent, whole prefill", 2.0, growth, "exponent"),
            ),
        ),
        correction=(
            "A prompt must be prefilled once, but a prefix seen before need not be: serving "
            "systems cache the K and V of shared prefixes (system prompts, documents, earlier "
            "turns) and prefill only the new tokens. And the whole prefill is quadratic only "
            f"well beyond the crossover ({crossover:.1f}·d for {model.name}, causal); at "
            f"{n:,} it is close."
        ),
    )


# --- textbook: modern context lengths ----------------------------------------------------------


def _contexts_reference(*keys: str) -> str:
    return "; ".join(f"{CONTEXTS[k].label}: {CONTEXTS[k].cite()}" for k in keys)


def _contexts_recomputed(*keys: str) -> str:
    return "; ".join(
        f"{CONTEXTS[k].label} {CONTEXTS[k].value:,.0f} ({CONTEXTS[k].date})" for k in keys
    )


def _gpt3_2k() -> Claim:
    return Claim(
        id="context_gpt3",
        source=TEXTBOOK,
        where="Modern context lengths",
        claim="GPT-3 (2020) had a 2K-token context.",
        stated="2K",
        recomputed=_contexts_recomputed("GPT-3"),
        assumption="the published training context",
        reference=_contexts_reference("GPT-3"),
        parts=((_context_check("GPT-3", 2048, "GPT-3"),),),
    )


def _gpt4() -> Claim:
    keys = ("GPT-4", "GPT-4-32k", "GPT-4 Turbo")
    return Claim(
        id="context_gpt4",
        source=TEXTBOOK,
        where="Modern context lengths",
        claim="GPT-4 (2023) launched with 8K and 32K variants; GPT-4 Turbo has 128K.",
        stated="8K, 32K; 128K",
        recomputed=_contexts_recomputed(*keys),
        assumption="announced context lengths",
        reference=_contexts_reference(*keys),
        parts=(
            (_context_check("GPT-4", 8192, "GPT-4"),),
            (_context_check("GPT-4-32k", 32768, "GPT-4-32k"),),
            (_context_check("GPT-4 Turbo", 128_000, "GPT-4 Turbo"),),
        ),
    )


def _claude2_first() -> Claim:
    keys = ("Claude 1 (100K)", "Claude 2")
    api, public = CONTEXTS["Claude 1 (100K)"], CONTEXTS["Claude 2"]
    return Claim(
        id="context_claude2_first",
        source=TEXTBOOK,
        where="Modern context lengths",
        claim=(
            "Claude 2 (2023), with 100K tokens, was the first widely available long-context model."
        ),
        stated="Claude 2, 100K, the first",
        recomputed=_contexts_recomputed(*keys),
        assumption="'first widely available': first over the API, or first to the public",
        reference=_contexts_reference(*keys),
        parts=(
            (_context_check("Claude 2's context", 100_000, "Claude 2"),),
            (
                Check("first 100K model over the API", "Claude 2", "Claude 1", "same", api.cite()),
                Check(
                    "first 100K model open to the public (claude.ai)",
                    "Claude 2",
                    "Claude 2",
                    "same",
                    public.cite(),
                ),
            ),
        ),  # fmt: skip
        correction=(
            f"The 100K window shipped two months earlier, with Claude 1 over the API "
            f"({api.date}); Claude 2 ({public.date}) was the first with it in a public chat app."
        ),
    )


def _claude_200k_1m() -> Claim:
    rows = (
        ("Claude 3", 200_000),
        ("Claude 3.5 Sonnet", 200_000),
        ("Claude Opus 4.6", 1e6),
        ("Claude Opus 4.7", 1e6),
        ("Claude Sonnet 4.5", 1e6),
        ("Claude Sonnet 4.6", 1e6),
    )
    keys = [key for key, _ in rows]
    return Claim(
        id="context_claude_200k_1m",
        source=TEXTBOOK,
        where="Modern context lengths",
        claim=(
            "Claude (2024-2026): 200K from Claude 3 / 3.5; Opus 4.6 / 4.7 ship 1M as standard, "
            "and Sonnet 4.5 / 4.6 also have 1M."
        ),
        stated="200K; 1M",
        recomputed=_contexts_recomputed(*keys),
        assumption="the standard context of each model (betas noted)",
        reference=_contexts_reference(*keys, "Claude 2.1"),
        parts=tuple((_context_check(key, stated, key),) for key, stated in rows),
        correction=(
            "Sonnet 4.5's standard window is 200K; 1M was a beta for some API users. The "
            f"rest holds. (200K came first with Claude 2.1, {CONTEXTS['Claude 2.1'].date}.)"
        ),
    )


def _gemini() -> Claim:
    keys = ("Gemini 1.5 Pro", "Gemini 1.5 Pro (2M)", "Gemini 2.5 Pro")
    return Claim(
        id="context_gemini",
        source=TEXTBOOK,
        where="Modern context lengths",
        claim=(
            "Gemini 1.5 introduced 1M tokens; Gemini 2.5 Pro has 1M with 2M still in preview, "
            "and near-perfect needle-in-a-haystack recall."
        ),
        stated="1M; 1M (2M in preview); near-perfect",
        recomputed=_contexts_recomputed(*keys)
        + f"; {GEMINI_RECALL.label}: above {GEMINI_RECALL.value:.0%}",
        assumption="announced context lengths; 'near-perfect' read as above 95 %",
        reference=_contexts_reference(*keys) + f"; {GEMINI_RECALL.cite()}",
        parts=(
            (_context_check("Gemini 1.5", 1e6, "Gemini 1.5 Pro"),),
            (_context_check("Gemini 2.5 Pro", 1e6, "Gemini 2.5 Pro"),),
            (_context_check("Gemini 2.5 Pro, the 2M figure", 2e6, "Gemini 2.5 Pro"),),
            (
                Check(
                    "needle-in-a-haystack recall",
                    0.95,
                    GEMINI_RECALL.value,
                    "more than",
                    GEMINI_RECALL.cite(),
                ),
            ),
        ),  # fmt: skip
        correction=(
            "Gemini 2.5 Pro was announced with 1M and '2 million coming soon'; the 2M window "
            f"that shipped was Gemini 1.5 Pro's ({CONTEXTS['Gemini 1.5 Pro (2M)'].date})."
        ),
    )


def _open_weights() -> Claim:
    base = [get_model(name) for name in ("Llama-3-8B", "Llama-3-70B", "Mistral-7B")]
    extended = CONTEXTS["Llama 3.1"]
    return Claim(
        id="context_open_weights",
        source=TEXTBOOK,
        where="Modern context lengths",
        claim=(
            "Most open-weight models (2024-2026) have 8K to 32K base contexts, 128K with RoPE "
            "scaling and continued pre-training."
        ),
        stated="8K-32K base, 128K extended",
        recomputed=", ".join(f"{m.name} {m.context:,}" for m in base)
        + f"; {extended.label} {extended.value:,.0f} ({extended.date})",
        assumption="the open-weight presets and one extended model; 'most' is not counted",
        reference="presets (HF config.json files); " + _contexts_reference("Llama 3.1"),
        parts=(
            tuple(Check(m.name, (8192.0, 32768.0), m.context, "range", m.source) for m in base),
            (
                _context_check(
                    "Llama 3.1 (RoPE scaling, continued pre-training)", 128_000, "Llama 3.1"
                ),
            ),
        ),
    )


def _deepseek_128k() -> Claim:
    preset = get_moe_model("DeepSeek-V3")
    return Claim(
        id="context_deepseek",
        source=TEXTBOOK,
        where="Modern context lengths",
        claim="DeepSeek-V3 / R1 (2024-2025) have a 128K context.",
        stated="128K",
        recomputed=_contexts_recomputed("DeepSeek-V3")
        + f" (preset: {preset.context:,}; config max_position_embeddings 163,840)",
        assumption="the technical report's context (R1 shares V3's architecture)",
        reference=_contexts_reference("DeepSeek-V3"),
        parts=((_context_check("DeepSeek-V3", 128_000, "DeepSeek-V3"),),),
    )


def _mla_order_of_magnitude() -> Claim:
    m = get_moe_model("DeepSeek-V3")
    context = 128 * 1024
    latent = cost.mla_kv_cache_bytes(m, context)
    mha = cost.kv_cache_bytes(m.layers, m.heads, m.v_head_dim, context)
    gqa = cost.kv_cache_bytes(m.layers, 8, m.v_head_dim, context)
    vs_mha, vs_gqa = mha / latent, gqa / latent
    return Claim(
        id="mla_10x",
        source=TEXTBOOK,
        where="Modern context lengths",
        claim=(
            "DeepSeek-V3's multi-head latent attention shrinks the KV cache by an order of "
            "magnitude."
        ),
        stated="an order of magnitude",
        recomputed=(
            f"{vs_mha:.0f}x smaller than multi-head K/V of the same 128 heads x 128 dims; "
            f"{vs_gqa:.1f}x smaller than an 8-KV-head GQA cache "
            f"(128K tokens: {_bytes(latent)} vs {_bytes(mha)})"
        ),
        assumption="576 cached numbers per token per layer (512 latent + 64 RoPE key), fp16",
        reference="cost.mla_kv_cache_bytes with the DeepSeek-V3 preset; DeepSeek-V2 paper "
        "(arXiv:2405.04434), Sec. 2.1, Table 1: MHA caches 2·n_h·d_h per token and layer",
        parts=(
            (
                Check("against multi-head attention", (10.0, 100.0), vs_mha, "range"),
                Check("against GQA with 8 KV heads", (10.0, 100.0), vs_gqa, "range"),
            ),
        ),
        correction=(
            f"The factor depends on the baseline: {vs_mha:.0f}x against MHA, {vs_gqa:.1f}x "
            "against GQA-8."
        ),
    )


def _none_naive() -> Claim:
    a100 = get_hardware("A100-SXM4-80GB")
    gpt3, llama70 = get_model("GPT-3-175B"), get_model("Llama-3-70B")
    deepseek = get_moe_model("DeepSeek-V3")

    def peak_vs_device(n: int, heads: int) -> float:
        return cost.forward_peak_score_bytes(n, heads, "float16") / a100.memory_bytes

    rows = (
        (f"GPT-3 at 2K ({CONTEXTS['GPT-3'].date}, before FlashAttention)",
         peak_vs_device(2048, gpt3.heads)),
        ("a 70B model (64 heads) at 100K", peak_vs_device(100_000, llama70.heads)),
        ("DeepSeek-V3 (128 heads) at 128K", peak_vs_device(128 * 1024, deepseek.heads)),
        ("a 64-head model at 1M", peak_vs_device(10**6, llama70.heads)),
    )  # fmt: skip
    return Claim(
        id="none_naive",
        source=TEXTBOOK,
        where="Modern context lengths",
        claim="None of these context lengths was achievable with naive softmax attention.",
        stated="none fits naively",
        recomputed="; ".join(f"{label}: {ratio:.3g}x an A100's memory" for label, ratio in rows),
        assumption="one layer's forward peak (S and P of every head), fp16, batch 1",
        reference=(
            "cost.forward_peak_score_bytes; FlashAttention appeared 2022-05-27 (arXiv:2205.14135)"
        ),
        parts=tuple(_one(label, 1.0, ratio, "more than") for label, ratio in rows),
        correction=(
            "True from 100K up; GPT-3's 2K was trained with ordinary attention two years before "
            "FlashAttention existed."
        ),
    )


def _gemini_architecture() -> Claim:
    return Claim(
        id="gemini_subquadratic",
        source=TEXTBOOK,
        where="Modern context lengths",
        claim=(
            "Gemini's long context almost certainly involves sub-quadratic architectural changes."
        ),
        stated="sub-quadratic ingredients",
        recomputed="—",
        assumption="—",
        reference="Gemini 1.5 report, arXiv:2403.05530 (a sparse mixture-of-experts Transformer)",
        not_checkable=(
            "not checkable, because Google has not published Gemini's attention; its report "
            "describes a sparse mixture-of-experts Transformer and nothing finer"
        ),
    )


def _frontier_range() -> Claim:
    low, high = CONTEXTS["Claude 3"], CONTEXTS["Gemini 1.5 Pro (2M)"]
    return Claim(
        id="context_frontier_range",
        source=TEXTBOOK,
        where="takeaways",
        claim="Frontier context lengths of 2024-2026 run from 200K to 2M tokens.",
        stated="200K to 2M",
        recomputed=_contexts_recomputed("Claude 3", "Gemini 1.5 Pro (2M)"),
        assumption="the smallest and largest announced frontier windows of the period",
        reference=_contexts_reference("Claude 3", "Gemini 1.5 Pro (2M)"),
        parts=(
            (Check("low end", 200_000, low.value, "ratio", low.cite()),),
            (Check("high end", 2e6, high.value, "ratio", high.cite()),),
        ),
    )


def _takeaway_judgements() -> Claim:
    return Claim(
        id="takeaway_judgements",
        source=TEXTBOOK,
        where="Modern context lengths; takeaways",
        claim=(
            "The headline numbers are advertising; the three families are complementary; no "
            "single trick is sufficient."
        ),
        stated="judgements",
        recomputed="—",
        assumption="—",
        reference="—",
        not_checkable=(
            "not checkable, because these are judgements about engineering practice with no "
            "figure to compare"
        ),
    )


# --- interview answer ---------------------------------------------------------------------


def _scores_stored() -> Claim:
    n, head_dim = 4096, 128
    dots = cost.score_count(n)
    naive = _exponent(lambda x: cost.forward_peak_score_bytes(x, 1), n)
    tiled = _exponent(lambda x: tiling.tiled_attention_peak_bytes(x, head_dim, "float16"), n)
    return Claim(
        id="scores_must_be_stored",
        source=INTERVIEW,
        where="short answer",
        claim=(
            "Every query meets every key: an n x n score matrix that must be stored and normalised."
        ),
        stated="n² dot products, stored",
        recomputed=(
            f"{_count(dots)} dot products at n = {n}; memory growth exponent {naive:.2f} naive, "
            f"{tiled:.2f} tiled"
        ),
        assumption="naive attention vs the course's tiled attention (exact, notebook 03)",
        reference=(
            "cost.score_count, cost.forward_peak_score_bytes, tiling.tiled_attention_peak_bytes"
        ),
        parts=(
            _one("dot products", float(n * n), dots, "ratio"),
            (
                Check("memory of the standard implementation", 2.0, naive, "exponent"),
                Check("memory of any exact implementation", 2.0, tiled, "exponent"),
            ),
        ),
        correction="Computed, yes; stored, only by the standard implementation: tiled attention "
        "normalises it on the fly in O(n) memory, as the same answer's FlashAttention row says.",
    )


def _quadratic_prohibitive() -> Claim:
    n, model = 4096, get_model("Llama-2-7B")
    compute = _exponent(lambda x: cost.attention_matmul_flops(x, model.d_model), n)
    naive = _exponent(lambda x: cost.forward_peak_score_bytes(x, model.heads), n)
    tiled = _exponent(lambda x: tiling.tiled_attention_peak_bytes(x, model.head_dim, "float16"), n)
    limit = cost.max_n_for_memory(
        get_hardware("A100-SXM4-80GB").memory_bytes,
        "bfloat16",
        heads=model.heads,
        layers=model.layers,
    )
    return Claim(
        id="quadratic_prohibitive",
        source=INTERVIEW,
        where="short answer",
        claim=(
            "Compute and memory both grow quadratically, which becomes prohibitive beyond a "
            "few thousand tokens."
        ),
        stated="quadratic; prohibitive beyond a few thousand",
        recomputed=(
            f"exponents: compute {compute:.2f}, memory {naive:.2f} naive / {tiled:.2f} tiled; "
            f"naive training of {model.name} keeps all scores on an 80 GB A100 up to "
            f"n = {limit:,}"
        ),
        assumption="bf16 scores kept for the backward, all layers and heads, nothing else counted",
        reference=(
            "cost.attention_matmul_flops, cost.max_n_for_memory, tiling.tiled_attention_peak_bytes"
        ),
        parts=(
            _one("compute, exponent in n", 2.0, compute, "exponent"),
            (
                Check("memory, standard implementation", 2.0, naive, "exponent"),
                Check("memory, tiled implementation", 2.0, tiled, "exponent"),
            ),
            _one("longest n that fits (naive training)", (2000.0, 9999.0), limit, "range"),
        ),
        correction="The compute is quadratic; the memory only for the standard implementation.",
    )


def _qk_macs() -> Claim:
    n, d = 4096, 128
    macs = cost.matmul_flops(n, d, n) / 2
    return Claim(
        id="qk_macs",
        source=INTERVIEW,
        where="How to think about it",
        claim="Forming Q Kᵀ takes O(n²·d) multiply-accumulates and O(n²) memory.",
        stated="n²·d MACs",
        recomputed=f"n = {n}, d = {d}: {macs:.4g} MACs = n²·d exactly ({2 * macs:.4g} FLOPs)",
        assumption="one multiply-accumulate = 2 FLOPs",
        reference="cost.matmul_flops",
        parts=(_one("multiply-accumulates", float(n * n * d), macs, "ratio"),),
    )


def _n4096_64mb() -> Claim:
    n_bytes = cost.score_matrix_bytes(4096, "float32")
    return Claim(
        id="n4096_fp32_64mb",
        source=INTERVIEW,
        where="How to think about it",
        claim="At n = 4096 in fp32 the score matrix is 64 MB per head.",
        stated="64 MB",
        recomputed=_bytes(n_bytes),
        assumption="4 bytes per fp32 score; the 64 is binary: 64 MiB",
        reference="cost.score_matrix_bytes",
        parts=(_one("bytes", float(64 * 2**20), n_bytes, "ratio"),),
        correction="Exactly 64 MiB = 67.1 MB (decimal): the text's 'MB' means MiB.",
    )


def _heads_layers_dominant() -> Claim:
    model = get_model("Llama-2-7B")
    scores = cost.score_matrix_bytes(4096, "float32", heads=model.heads, layers=model.layers)
    weights = cost.weight_bytes(model, "float32")
    return Claim(
        id="scores_dominate_memory",
        source=INTERVIEW,
        where="How to think about it",
        claim="Times the heads and the layers, the score matrices become the largest memory cost.",
        stated="dominant memory cost",
        recomputed=(
            f"{model.name}, n = 4096, fp32: {model.heads} heads x {model.layers} layers x 64 MiB "
            f"= {_bytes(scores)} vs weights {_bytes(weights)}"
        ),
        assumption="every layer's scores kept (training, naive attention), batch 1",
        reference="cost.score_matrix_bytes, cost.weight_bytes",
        parts=(_one("scores / weights", 1.0, scores / weights, "more than"),),
    )


def _n1000_fine() -> Claim:
    model = get_model("Llama-2-7B")
    scores = cost.score_matrix_bytes(1000, "float32", heads=model.heads, layers=model.layers)
    weights = cost.weight_bytes(model, "float32")
    return Claim(
        id="n1000_fine",
        source=INTERVIEW,
        where="Why it matters in practice",
        claim="At n = 1000 the quadratic cost is fine.",
        stated="fine",
        recomputed=f"{model.name}, fp32: all scores {_bytes(scores)} vs weights {_bytes(weights)}",
        assumption="'fine' read as: the scores are not the dominant memory cost",
        reference="cost.score_matrix_bytes, cost.weight_bytes",
        parts=(_one("scores / weights", 1.0, scores / weights, "less than"),),
    )


def _n32000_4gb() -> Claim:
    n_bytes = cost.score_matrix_bytes(32000, "float32")
    return Claim(
        id="n32000_fp32_4gb",
        source=INTERVIEW,
        where="Why it matters in practice",
        claim="At n = 32,000 in fp32 the score matrix is about 4 GB per head.",
        stated="~4 GB",
        recomputed=_bytes(n_bytes),
        assumption="4 bytes per fp32 score",
        reference="cost.score_matrix_bytes",
        parts=(_one("bytes", 4e9, n_bytes, "ratio"),),
    )


def _n32000_infeasible() -> Claim:
    n = 32000
    tiled = tiling.tiled_attention_peak_bytes(n, 128, "float32")
    matrix = cost.score_matrix_bytes(n, "float32")
    return Claim(
        id="n32000_needs_approximation",
        source=INTERVIEW,
        where="Why it matters in practice",
        claim=(
            "At n = 32,000 (typical of long documents) attention "
            "is infeasible without approximation."
        ),
        stated="exact attention needs the 4 GB matrix",
        recomputed=(
            f"exact tiled attention's peak per head: {_bytes(tiled)} ({tiled / matrix:.2%} of it)"
        ),
        assumption="the course's tiled attention, head_dim 128, key blocks of 256, fp32",
        reference="tiling.tiled_attention_peak_bytes",
        parts=(_one("exact attention's memory / the matrix", 1.0, tiled / matrix, "more than"),),
        correction=(
            "Exact tiled attention (notebook 03, FlashAttention) never stores the matrix. "
            "('Typical of long documents' names no task and is not checked.)"
        ),
    )


def _kv_growth() -> Claim:
    model, n = get_model("Llama-2-7B"), 4096

    def size(t: int) -> float:
        return cost.model_kv_cache_bytes(model, t)

    def read(t: int) -> float:  # step s reads the s cached tokens
        return sum(size(s) for s in range(1, t + 1))

    increment = _exponent(lambda t: size(t + 1) - size(t), n)
    per_step_read = _exponent(size, n)
    total_size, total_read = _exponent(size, n), _exponent(read, n)
    return Claim(
        id="kv_growth_n2",
        source=INTERVIEW,
        where="Why it matters in practice",
        claim="The KV cache grows as O(n) per generated token, O(n²) over a whole generation.",
        stated="O(n) per token, O(n²) total",
        recomputed=(
            f"{model.name} fp16, exponents near n = {n}: per token the cache grows by a "
            f"constant (exponent {increment:.2f}) and one step reads it all ({per_step_read:.2f}); "
            f"over the generation its size grows as {total_size:.2f}, the bytes read as "
            f"{total_read:.2f}"
        ),
        assumption="batch 1, fp16 cache, no prompt",
        reference="cost.model_kv_cache_bytes",
        parts=(
            (
                Check("per token: the cache's growth", 1.0, increment, "exponent"),
                Check("per token: bytes read from the cache", 1.0, per_step_read, "exponent"),
            ),
            (
                Check("whole generation: the cache's size", 2.0, total_size, "exponent"),
                Check("whole generation: bytes read", 2.0, total_read, "exponent"),
            ),
        ),
        correction=(
            "True of the reading, not of the size: the cache gains a constant slice per token "
            "and is O(n) after n tokens, while each step reads all of it, O(n) per token and "
            "O(n²) in all."
        ),
    )


def _sparse_rows() -> Claim:
    n = 1024
    longformer = _pattern_exponent(lambda x: sparse.longformer_pattern(x, 64, (0,)), n)
    bigbird = _pattern_exponent(lambda x: sparse.bigbird_pattern(x, 64), n)
    return Claim(
        id="sparse_o_n",
        source=INTERVIEW,
        where="table of approaches",
        claim="Sparse attention (Longformer, BigBird): a local window plus global tokens, O(n).",
        stated="O(n)",
        recomputed=f"growth exponents of the allowed pairs near n = {n}: Longformer "
        f"{longformer:.2f}, BigBird {bigbird:.2f}",
        assumption="Longformer radius 64 + 1 global token; BigBird blocks of 64 (BigBird adds "
        "random blocks too)",
        reference="sparse.longformer_pattern, sparse.bigbird_pattern (counted)",
        parts=(
            _one("Longformer", 1.0, longformer, "exponent"),
            _one("BigBird", 1.0, bigbird, "exponent"),
        ),
    )


def _flash_row() -> Claim:
    n, head_dim = 4096, 64
    compute = _exponent(lambda x: cost.attention_matmul_flops(x, head_dim), n)
    memory = _exponent(lambda x: tiling.tiled_attention_peak_bytes(x, head_dim, "float16"), n)
    traffic = tiling.naive_hbm_bytes(n, head_dim) / tiling.tiled_hbm_bytes_for_blocks(
        n, head_dim, 128, 64
    )
    return Claim(
        id="flash_o_n2_o_n",
        source=INTERVIEW,
        where="table of approaches; closing paragraph",
        claim=(
            "FlashAttention tiles Q, K, V in SRAM: exact, O(n²) compute, O(n) memory, and less "
            "memory IO."
        ),
        stated="O(n²) compute, O(n) memory, less IO",
        recomputed=(
            f"exponents: compute {compute:.2f}, memory {memory:.2f}; HBM bytes at n = {n}, "
            f"head_dim {head_dim}: naive / tiled (128 x 64 tiles) = {traffic:.1f}x"
        ),
        assumption="one head, fp16, non-causal",
        reference="tiling.tiled_attention_peak_bytes, tiling.naive_hbm_bytes, "
        "tiling.tiled_hbm_bytes_for_blocks",
        parts=(
            _one("compute, exponent in n", 2.0, compute, "exponent"),
            _one("memory, exponent in n", 1.0, memory, "exponent"),
            _one("naive / tiled HBM bytes", 1.0, traffic, "more than"),
        ),
    )


def _linear_row() -> Claim:
    n, head_dim = 4096, 64
    exponent = _exponent(lambda x: linear.linear_attention_flops(x, head_dim), n)
    return Claim(
        id="linear_o_n",
        source=INTERVIEW,
        where="short answer; table of approaches",
        claim="Linear attention (a kernel in place of the softmax, reordered products) is O(n): "
        "approximate methods trade exactness for sub-quadratic cost.",
        stated="O(n)",
        recomputed=f"growth exponent in n: {exponent:.2f} (per head, m = head_dim = {head_dim})",
        assumption="non-causal linear attention",
        reference="linear.linear_attention_flops",
        parts=(_one("exponent in n", 1.0, exponent, "exponent"),),
    )


def _sliding_window() -> Claim:
    n, window = 2048, 128
    mistral = get_model("Mistral-7B")
    in_n = _pattern_exponent(lambda x: sparse.sliding_window_pattern(x, window), n // 2)
    in_w = _exponent(
        lambda w: float(sparse.sliding_window_pattern(n, w).dense_mask().sum()), window
    )
    return Claim(
        id="sliding_window_onw",
        source=INTERVIEW,
        where="table of approaches",
        claim="Sliding-window attention (Mistral): a local window of w keys, O(n·w).",
        stated="O(n·w)",
        recomputed=(
            f"allowed pairs: exponent {in_n:.2f} in n (w = {window}), {in_w:.2f} in w "
            f"(n = {n}); Mistral-7B-v0.1 uses w = 4096 over a {mistral.context:,} context"
        ),
        assumption="causal window counting w keys, itself included",
        reference="sparse.sliding_window_pattern (counted); HF mistralai/Mistral-7B-v0.1 "
        "config.json (sliding_window 4096)",
        parts=(
            _one("exponent in n", 1.0, in_n, "exponent"),
            _one("exponent in w", 1.0, in_w, "exponent"),
        ),
    )


def _alibi_rope_cheaper() -> Claim:
    n, model = 4096, get_model("Llama-2-7B")
    attention = cost.attention_matmul_flops(n, model.d_model)
    alibi = 1 + cost.position_encoding_flops("alibi", n, model.d_model, model.heads) / attention
    rope = 1 + cost.position_encoding_flops("rope", n, model.d_model, model.heads) / attention
    return Claim(
        id="alibi_rope_cheaper",
        source=INTERVIEW,
        where="table of approaches",
        claim="ALiBi / RoPE: still O(n²), but with a cheaper constant.",
        stated="cheaper",
        recomputed=(
            f"at the same length ({model.name}, n = {n}): attention with ALiBi costs {alibi:.4f}x, "
            f"with RoPE {rope:.5f}x; ALiBi's paper: trained at 1024 it matches a 2048-token "
            f"sinusoidal model in {ALIBI_TRAIN_SHORT.value:.2f}x the time and memory"
        ),
        assumption="cost ratio with / without the position encoding; below 1 is cheaper",
        reference=f"cost.position_encoding_flops; {ALIBI_TRAIN_SHORT.cite()}",
        parts=(
            (
                Check("ALiBi at the same length", 1.0, alibi, "less than"),
                Check(
                    "ALiBi, train short and test long",
                    1.0,
                    ALIBI_TRAIN_SHORT.value,
                    "less than",
                    ALIBI_TRAIN_SHORT.cite(),
                ),
            ),
            _one("RoPE at the same length", 1.0, rope, "less than"),
        ),  # fmt: skip
        correction=(
            "Neither makes a step of attention cheaper: both add work. ALiBi's saving is "
            "indirect: it extrapolates, so a model can be trained on shorter sequences "
            "(11 % faster, 11 % less memory for the same perplexity). RoPE has no such result."
        ),
    )


def _position_bias() -> Claim:
    source = (
        "Press et al., arXiv:2108.12409, Sec. 3 (ALiBi adds -m·(i - j) to each score); Su et "
        "al., RoFormer, arXiv:2104.09864, Sec. 3.2-3.4 (RoPE rotates q and k; no bias term)"
    )
    return Claim(
        id="position_bias_at_scores",
        source=INTERVIEW,
        where="table of approaches",
        claim="ALiBi / RoPE: a relative bias added at the score level, no extra matrix.",
        stated="a bias on the scores",
        recomputed="ALiBi: a bias per (head, distance) added to each score; RoPE: a rotation of "
        "every query and key pair of channels (6·n·d FLOPs per layer)",
        assumption="the two methods as published",
        reference=f"{source}; cost.position_encoding_flops",
        parts=(
            _one("ALiBi adds a bias to the scores", True, True, "same", source),
            _one("RoPE adds a bias to the scores", True, False, "same", source),
        ),
        correction="RoPE is not a bias: it rotates q and k, so that q·k depends on the offset.",
    )


def _flash_adopted() -> Claim:
    return Claim(
        id="flash_most_adopted",
        source=INTERVIEW,
        where="closing paragraph",
        claim="FlashAttention is the most widely adopted of these methods.",
        stated="most adopted",
        recomputed="—",
        assumption="—",
        reference="—",
        not_checkable=(
            "not checkable, because no count of deployments across these methods is published "
            "(it is the default fused kernel of PyTorch's scaled_dot_product_attention on "
            "recent NVIDIA GPUs, which is suggestive, not a count)"
        ),
    )


def _flash_3_5x() -> Claim:
    keys = ("gpt2", "repo_low", "repo_high", "lra", "fa1_summary_low", "fa1_summary_high")
    return Claim(
        id="flash_3_5x",
        source=INTERVIEW,
        where="closing paragraph",
        claim=(
            "FlashAttention is about 3-5x faster than naive attention, with the same O(n²) compute."
        ),
        stated="3-5x",
        recomputed="; ".join(f"{SPEEDUPS[k].label}: {SPEEDUPS[k].value:g}x" for k in keys),
        assumption="published measurements, each with its GPU and its baseline",
        reference=f"{_FA1}; {_FA2}; {_FA_REPO}",
        parts=(_flash_speedup_checks((3.0, 5.0), keys),),
        correction=(
            "3-5x is the repository's figure for whole GPT training with FlashAttention and "
            "other fused layers against HuggingFace; the paper's own end-to-end figures are "
            f"1.15-3x, and '2-4x' in its successor's summary. {_fa2_note()}. "
            f"{_OWN_MEASUREMENT}"
        ),
    )


_BUILDERS: tuple[Callable[[], Claim], ...] = (
    # textbook, in the order of the text
    _double_context,
    _redesign,
    _scores_8k,
    _million_advertised,
    _scores_1m,
    _scores_1m_no_device,
    _matmul_flops,
    _matmuls_dominate,
    _per_layer_big_o,
    _forward_big_o,
    _backward_keeps_p,
    _training_70gb,
    _pre_flash_remedies,
    _a100_bandwidth,
    _score_tensor_2gb,
    _a100_30ms,
    _softmax_passes,
    _bandwidth_bill,
    _oom_at_8k,
    _early_512,
    _ffn_more_parameters,
    _ffn_linear,
    _crossover_n_equals_d,
    _frontier_two_orders,
    _chicken_and_egg,
    _flash_memory_compute,
    _flash_2_4x,
    _linear_attention,
    _linformer,
    _performer,
    _recurrences,
    _mamba,
    _sparse_family,
    _decode_no_cache,
    _kv_50gb,
    _kv_vs_weights,
    _kv_shrinkers,
    _bottlenecks,
    _ttft_200k,
    _prefill_attackers,
    _prefill_unavoidable,
    _gpt3_2k,
    _gpt4,
    _claude2_first,
    _claude_200k_1m,
    _gemini,
    _open_weights,
    _deepseek_128k,
    _mla_order_of_magnitude,
    _none_naive,
    _gemini_architecture,
    _frontier_range,
    _takeaway_judgements,
    # interview answer
    _scores_stored,
    _quadratic_prohibitive,
    _qk_macs,
    _n4096_64mb,
    _heads_layers_dominant,
    _n1000_fine,
    _n32000_4gb,
    _n32000_infeasible,
    _kv_growth,
    _sparse_rows,
    _flash_row,
    _linear_row,
    _sliding_window,
    _alibi_rope_cheaper,
    _position_bias,
    _flash_adopted,
    _flash_3_5x,
)


def all_claims() -> list[Claim]:
    """Every claim, recomputed now, in the order the texts make them (textbook first)."""
    return [build() for build in _BUILDERS]


def get_claim(claim_id: str) -> Claim:
    """One claim by id, built on its own (the others are built only to list the ids)."""
    built = []
    for build in _BUILDERS:
        claim = build()
        if claim.id == claim_id:
            return claim
        built.append(claim.id)
    raise ValueError(f"claim_id must be one of {sorted(built)}, got {claim_id!r}")


def verdict_counts(claims: Iterable[Claim] | None = None) -> dict[str, int]:
    """How many claims got each verdict, in the order of :data:`VERDICTS`."""
    verdicts = [c.verdict for c in (all_claims() if claims is None else claims)]
    return {v: verdicts.count(v) for v in VERDICTS}


def verdicts_markdown(claims: Iterable[Claim] | None = None) -> str:
    """One Markdown bullet per verdict: how many claims got it, and which (by id)."""
    claims = all_claims() if claims is None else list(claims)
    lines = []
    for verdict in VERDICTS:
        ids = [f"`{c.id}`" for c in claims if c.verdict == verdict]
        if ids:
            lines.append(f"* **{verdict}** ({len(ids)}): {', '.join(ids)}")
    return "\n".join(lines)


def sources_markdown() -> str:
    """One Markdown bullet per source text: its label in the table and what it is."""
    return "\n".join(f"* **{label}**: {text}." for label, text in SOURCES.items())


_COLUMNS = (
    "id", "source", "where", "claim", "stated", "recomputed", "checks", "verdict", "reference",
    "correction",
)  # fmt: skip


def claims_table(claims: Iterable[Claim] | None = None) -> list[dict[str, object]]:
    """The claims as plain dicts (one per row), e.g. for ``pandas.DataFrame`` if you have it.

    Each row has the Claim's fields (``parts`` as nested dicts), its ``verdict`` and
    ``rule``, and ``checks``: one line per check (stated vs found, rule, verdict), or the
    reason the claim is not checkable.
    """
    rows = []
    for claim in all_claims() if claims is None else claims:
        row = asdict(claim)
        row["verdict"] = claim.verdict
        row["rule"] = claim.rule if claim.parts else ""
        row["checks"] = "\n".join(check.describe() for check in claim.checks) or claim.not_checkable
        rows.append(row)
    return rows


def claims_markdown(claims: Iterable[Claim] | None = None) -> str:
    """A Markdown table with the columns of :data:`_COLUMNS`."""

    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("\n", "<br>")

    rows = claims_table(claims)
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(cell(row[c]) for c in _COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


_VERDICT_COLOURS = {
    HOLDS: "#2e7d32",
    ROUGHLY: "#ef6c00",
    PARTLY: "#ad1457",
    WRONG: "#c62828",
    NOT_CHECKABLE: "#616161",
}


def claims_html(claims: Iterable[Claim] | None = None) -> str:
    """An HTML table with coloured verdicts, for ``IPython.display.HTML``."""
    e = html.escape
    head = "".join(f"<th style='text-align:left'>{e(c)}</th>" for c in _COLUMNS)
    body = []
    for row in claims_table(claims):
        cells = []
        for column in _COLUMNS:
            text = e(str(row[column])).replace("\n", "<br>")
            if column == "verdict":
                colour = _VERDICT_COLOURS[str(row["verdict"])]
                text = f"<b style='color:{colour}'>{text}</b>"
            cells.append(f"<td style='text-align:left;vertical-align:top'>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<table style='font-size:90%;border-collapse:collapse'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
