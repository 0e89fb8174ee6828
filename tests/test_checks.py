"""Every exercise check against its wrong-answer corpus (tests/corpus/nbNN.py).

For each exercise of the course: the worked solution passes, every other right answer in
the corpus passes, the untouched stub is "not attempted", and every wrong answer fails
with feedback that names its mistake. Each exercise needs at least four wrong answers
(six when it is worth two points or more): a check that no wrong answer fails is a defect.
"""

from __future__ import annotations

import importlib

import pytest

from attn_course.checks import all_exercises, get_exercise
from attn_course.course import marker_name
from attn_course.grade import run_check
from tests.corpus import MIN_WRONG, MIN_WRONG_TWO_POINTS, Wrong, solution_answers

EXERCISES = all_exercises()
NOTEBOOKS = sorted({e.notebook for e in EXERCISES})


def corpus(notebook: str):
    return importlib.import_module(f"tests.corpus.{marker_name(notebook)}")


def marked(notebook: str, *values, id: str):
    return pytest.param(*values, id=id, marks=getattr(pytest.mark, marker_name(notebook)))


def wrong_cases():
    for notebook in NOTEBOOKS:
        for exercise_id, answers in corpus(notebook).WRONG.items():
            for wrong in answers:
                yield marked(notebook, exercise_id, wrong, id=f"{exercise_id}: {wrong.mistake}")


def right_cases():
    for notebook in NOTEBOOKS:
        for exercise_id, answers in getattr(corpus(notebook), "RIGHT", {}).items():
            for number, answer in enumerate(answers, start=1):
                yield marked(notebook, exercise_id, answer, id=f"{exercise_id}: right {number}")


def exercise_cases():
    for e in EXERCISES:
        yield marked(e.notebook, e, id=e.id)


@pytest.mark.parametrize("exercise", list(exercise_cases()))
def test_the_worked_solution_passes(exercise):
    answer = solution_answers(exercise.notebook)[exercise.answer]
    result = run_check(exercise, answer)
    assert result.passed, result


@pytest.mark.parametrize("exercise", list(exercise_cases()))
def test_the_untouched_stub_is_not_attempted(exercise):
    def stub(*args, **kwargs):
        # YOUR CODE HERE
        raise NotImplementedError()

    assert run_check(exercise, stub).status == "not attempted"


@pytest.mark.parametrize("exercise", list(exercise_cases()))
def test_every_exercise_has_a_corpus_of_wrong_answers(exercise):
    wrong = corpus(exercise.notebook).WRONG.get(exercise.id, [])
    needed = MIN_WRONG_TWO_POINTS if exercise.points >= 2 else MIN_WRONG
    assert len(wrong) >= needed, f"{exercise.id}: {len(wrong)} wrong answers, need {needed}"
    assert len({w.mistake for w in wrong}) == len(wrong), "two wrong answers share a name"


@pytest.mark.parametrize(("exercise_id", "answer"), list(right_cases()))
def test_other_right_answers_pass(exercise_id, answer):
    result = run_check(get_exercise(exercise_id), answer)
    assert result.passed, result


@pytest.mark.parametrize(("exercise_id", "wrong"), list(wrong_cases()))
def test_wrong_answer_fails_and_feedback_names_the_mistake(exercise_id, wrong: Wrong):
    result = run_check(get_exercise(exercise_id), wrong.answer)
    assert result.status == "failed", f"{wrong.mistake!r} was not caught: {result}"
    feedback = f"{result.message}\n{result.hint}".lower()
    assert wrong.says.lower() in feedback, f"{wrong.mistake!r}: {result}"


def test_the_corpus_names_only_real_exercises():
    known = {e.id for e in EXERCISES}
    for notebook in NOTEBOOKS:
        module = corpus(notebook)
        for table in (module.WRONG, getattr(module, "RIGHT", {})):
            assert set(table) <= known, set(table) - known
            assert all(get_exercise(i).notebook == notebook for i in table)
