"""The classroom: the machinery that turns the course's sources into what people use.

``build`` makes the notebooks from their scripts, ``release`` the student release, ``site``
the static HTML edition, ``lab`` the learner's JupyterLab workspace and ``gradebook`` a
class's grades. None of them is imported by a lesson, a kernel or a screen: they read the
lesson map (:mod:`attn_course.course`) and the checks, never the other way round.
"""
