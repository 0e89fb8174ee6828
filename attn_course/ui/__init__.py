"""The course's screens: everything a notebook displays that a learner can drive.

This is the only folder of :mod:`attn_course` that imports ``ipywidgets`` or
``IPython.display`` (the grading machinery's kernel hook, :mod:`attn_course.grading.kernel`,
talks to IPython for its own reasons). One module per lesson, named after the lesson
module whose numbers it puts on screen, plus the framework they share:

==============  ====================================================================
``base``        the framework: control factories, :class:`~attn_course.ui.base.Calculator`,
                :func:`~attn_course.ui.base.live_or_static` (live in JupyterLab, a frozen
                snapshot on the static site)
``scores``      notebook 01: heatmaps of S and P, ``ScoreExplorer``, memory/time vs n
``cost``        notebook 02: the score-memory, FLOPs and KV-cache calculators, prefill time
``tiling``      notebook 03: ``TilingExplorer``
``sparse``      notebook 06: ``sparse_layout_figure``, ``SparsityExplorer``
``kvcache``     notebook 07: ``KVBudgetCalculator``
==============  ====================================================================

The rule: screens import lessons, never the other way round. A lesson module
(:mod:`attn_course.tiling`, :mod:`attn_course.sparse`, ...) and every kernel compute
numbers and may draw plain plotly figures, but import neither this package nor a widget
library, so the kernels, the checks and the grader load without ipywidgets. A figure moves
here only when a screen redraws it in place, or when drawing it would pull plotly into a
module the kernels import (:mod:`attn_course.scores`, :mod:`attn_course.cost`).

The submodules are not imported here: ``from attn_course.ui.cost import FlopsCalculator``
loads notebook 02's screens and nothing else.
"""
