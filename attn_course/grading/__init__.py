"""The grading machinery behind ``check(...)``, ``attn-grade`` and ``attn-gradebook``.

The trust model, in one paragraph. An exercise check (``attn_course.checks``) never holds
the student's function itself: it holds an :class:`~attn_course.grading.answers.Answer`,
and every call goes through it. In a notebook the answer is a
:class:`~attn_course.grading.answers.LocalAnswer` that calls the function in the same
process, for instant feedback. In the class grader it is a
:class:`~attn_course.grading.session.RemoteAnswer`: the inputs are sent to the student's
kernel, which only evaluates the student's function and sends back the result as plain
data (tensors, numbers, strings, tuples). Comparison, hints and points stay in the
grader's process, which no student code ever runs in. Both answers pass results through
the same codec (:mod:`~attn_course.grading.answers`), so they give the same verdict.

Modules:

``answers``  how a check calls an answer: the data codec, forbidden-call observation,
             the student's exceptions as data, and :class:`LocalAnswer`
``probes``   what a check may measure about an answer while it runs (memory peak, work)
``kernel``   the only grading code that runs *inside* the student's kernel
``sandbox``  confinement of that kernel (Landlock, resource limits, process trees)
``session``  the grader's side of one kernel: start it confined, run cells under limits,
             call answers remotely
``intake``   reading a submitted file safely (regular files only, capped sizes)
"""
