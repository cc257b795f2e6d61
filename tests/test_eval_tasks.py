"""Benchmark readers, prompts and scores: for each benchmark a tiny fixture written in its released format
(`eval_fixtures`), read through the registry, prompted in the llava15 style and scored on hand-written
replies with hand-worked numbers; then the same through ``vlm eval score``."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import pytest
from eval_fixtures import (
    CASES,
    LETTER,
    MMB_BASE,
    MMB_COLUMNS,
    MME_QUESTIONS,
    SHORT,
    build,
    png,
    write_json,
    write_parquet,
    write_tsv,
)

from vlm.cli import main
from vlm.eval.task import get_task


@pytest.mark.parametrize("name", CASES)
def test_scores_by_hand(name, tmp_path):
    case = build(name, tmp_path)
    task = get_task(name)
    samples = task.read(case.data)
    assert sorted(s.id for s in samples) == sorted(case.replies)
    scores = task.score(samples, [case.replies[s.id] for s in samples])
    assert scores.metrics == pytest.approx({**scores.metrics, **case.metrics})
    assert scores.chance == pytest.approx({**scores.chance, **case.chance})
    assert task.headline in scores.metrics
    for sample in samples:  # every image resolves and decodes
        assert sample.images[0].load(sample.id).size == (8, 6)


@pytest.mark.parametrize("name", CASES)
def test_cli_scores_llava_answer_files(name, tmp_path, capsys):
    case = build(name, tmp_path / "data")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        "".join(  # LLaVA writes numeric ids as numbers
            json.dumps({"question_id": int(i) if i.isdigit() else i, "text": t}) + "\n"
            for i, t in case.replies.items()
        )
    )
    args = [
        "eval",
        "score",
        "--task",
        name,
        "--data",
        str(case.data),
        "--predictions",
        str(answers),
        "--json",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"] == pytest.approx({**result["metrics"], **case.metrics})
    assert result["n"] == len(case.replies)


def read(name: str, tmp: Path) -> tuple:
    """The task, its samples by id and the fixture."""
    case = build(name, tmp)
    task = get_task(name)
    samples = task.read(case.data)
    return task, {s.id: s for s in samples}, case


def test_gqa_samples_prompt_and_parquet_layout(tmp_path):
    task, samples, case = read("gqa", tmp_path)
    s = samples["201"]
    assert (s.question, s.answer, s.meta["structural"]) == ("What is on the floor?", "table", "query")
    assert task.prompt(s, "llava15") == "What is on the floor?" + SHORT
    assert task.prompt(s, "plain") == "What is on the floor?"
    scores = task.score(list(samples.values()), [case.replies[i] for i in samples])
    assert {k: v["accuracy"] for k, v in scores.breakdown.items()} == {"logical": 0, "query": 1, "verify": 1}
    # lmms-eval's layout: questions and images as two parquet datasets
    lmms = tmp_path / "lmms"
    rows = [
        {
            "id": "201",
            "imageId": "n1",
            "question": "What is on the floor?",
            "answer": "table",
            "types": {"structural": "query", "semantic": "rel", "detailed": "relS"},
        }
    ]
    write_parquet(lmms / "testdev_balanced_instructions" / "testdev-00000-of-00001.parquet", rows)
    images = [{"id": "n1", "image": {"bytes": png(), "path": "n1.jpg"}}]
    write_parquet(lmms / "testdev_balanced_images" / "testdev-00000-of-00001.parquet", images)
    (p,) = task.read(lmms)
    assert (p.id, p.question, p.answer, p.meta["structural"]) == (
        "201",
        "What is on the floor?",
        "table",
        "query",
    )
    assert p.images[0].load(p.id).size == (8, 6)


def test_textvqa_adds_llava_reference_ocr_line(tmp_path):
    task, samples, _ = read("textvqa", tmp_path)
    assert task.prompt(samples["34602"], "llava15") == (
        "what brand is the phone?\nReference OCR token: nokia, 3310" + SHORT
    )
    assert samples["34603"].question == "what does the sign say?\nReference OCR token: stop"  # Rosetta file
    assert samples["34604"].question == "what colour is the bus?"  # no tokens: no line
    assert len(samples["34602"].answer) == 10
    rows = [
        {
            "question_id": 7,
            "question": "what time is it?",
            "answers": ["3:00"] * 10,
            "ocr_tokens": ["3:00"],
            "image": {"bytes": png(), "path": None},
        }
    ]
    (p,) = task.read(write_parquet(tmp_path / "lmms" / "validation-00000-of-00001.parquet", rows))
    assert (p.id, p.question) == ("7", "what time is it?\nReference OCR token: 3:00")


def test_vizwiz_prompt_and_breakdown(tmp_path):
    task, samples, case = read("vizwiz", tmp_path)
    s = samples["VizWiz_val_00000001"]
    assert s.answer == ["coffee"] * 3 + ["tea"] * 7
    assert task.prompt(s, "llava15") == (
        "What drink is this?\nWhen the provided information is insufficient, respond with 'Unanswerable'."
        + SHORT
    )
    assert task.prompt(s, "plain") == "What drink is this?"
    scores = task.score(list(samples.values()), [case.replies[i] for i in samples])
    assert scores.breakdown["other"]["accuracy"] == pytest.approx(0.9)
    assert set(scores.breakdown) == {"other", "unanswerable", "yes/no"}
    assert scores.breakdown["unanswerable"]["chance"] == 1.0  # within a type its answer wins


def test_mme_pairs_prompt_breakdown_and_parquet(tmp_path):
    task, samples, case = read("mme", tmp_path)
    s = samples["artwork/10002.jpg#1"]
    assert (s.answer, s.meta["subtask"]) == ("No", "artwork")
    for style in ("llava15", "plain"):  # asked as it is: the question ends in "Please answer yes or no."
        assert task.prompt(s, style) == "Is this artwork created by Goya? Please answer yes or no."
    scores = task.score(list(samples.values()), [case.replies[i] for i in samples])
    assert scores.breakdown["existence"] == {
        "n": 4,
        "acc": 75.0,
        "acc_plus": 50.0,
        "score": 125.0,
        "other": 0,
    }
    assert not task.percent
    rows = [
        {
            "question_id": "existence/0001.png",
            "question": q,
            "answer": a,
            "category": "existence",
            "image": {"bytes": png(), "path": None},
        }
        for q, a in MME_QUESTIONS[("existence", "0001")]
    ]
    parquet = task.read(write_parquet(tmp_path / "lmms" / "test-00000-of-00001.parquet", rows))
    assert [p.id for p in parquet] == ["existence/0001.png#0", "existence/0001.png#1"]
    assert task.score(parquet, ["yes", "no"]).metrics["perception"] == 200.0


def test_mmbench_prompt_circular_rows_and_built_rotations(tmp_path):
    task, samples, case = read("mmbench", tmp_path)
    assert task.prompt(samples["0"], "llava15") == (
        "Look at the animal.\nWhich animal is it?\nA. cat\nB. dog\nC. bird" + LETTER
    )
    assert task.prompt(samples["1000001"], "llava15") == "What colour is it?\nA. blue\nB. red" + LETTER
    scores = task.score(list(samples.values()), [case.replies[i] for i in samples])
    assert scores.breakdown == {
        "attribute": {"n": 1, "circular": 0.0, "vanilla": 1.0},
        "color": {"n": 1, "circular": 1.0, "vanilla": 1.0},
    }
    # a file without the copies (here lmms-eval's parquet) gets them built the same way
    rows = [
        dict(zip(MMB_COLUMNS, [*r, {"bytes": png(), "path": None}, "perception", "dev"], strict=True))
        for r in MMB_BASE
    ]
    built = task.read(write_parquet(tmp_path / "lmms" / "dev-00000-of-00001.parquet", rows))
    assert {(s.id, s.question, tuple(s.options), s.answer) for s in built} == {
        (s.id, s.question, tuple(s.options), s.answer) for s in samples.values()
    }


def test_scienceqa_image_test_questions_and_prompt(tmp_path):
    task, samples, _ = read("scienceqa_img", tmp_path)
    assert list(samples) == ["1", "3", "5"]  # 2 has no image, 4 is train
    assert [s.answer for s in samples.values()] == ["B", "C", "A"]
    assert task.prompt(samples["1"], "llava15") == (
        "Context: Whales live in the sea.\nWhich is a mammal?\nA. shark\nB. whale" + LETTER
    )
    assert task.prompt(samples["3"], "llava15") == "Which word is a noun?\nA. run\nB. blue\nC. dog" + LETTER


def test_seed_bench_image_part_prompt_and_types(tmp_path):
    task, samples, case = read("seed_bench", tmp_path)
    assert list(samples) == ["101", "102", "103"]  # the video question is left out
    assert task.prompt(samples["101"], "llava15") == "Question 101?\nA. a\nB. b\nC. c\nD. d" + LETTER
    scores = task.score(list(samples.values()), [case.replies[i] for i in samples])
    assert {k: v["accuracy"] for k, v in scores.breakdown.items()} == {
        "1 Scene Understanding": 0.5,
        "2 Instance Identity": 1.0,
    }


def test_ai2d_parquet_and_vlmevalkit_tsv(tmp_path):
    task, samples, _ = read("ai2d", tmp_path)
    assert [(s.answer, len(s.options)) for s in samples.values()] == [("A", 3), ("B", 2), ("D", 4)]
    assert task.prompt(samples["1"], "llava15") == "Which is underground?\nA. leaf\nB. root" + LETTER
    image = base64.b64encode(png()).decode()
    with (tmp_path / "AI2D_TEST.tsv").open("w", newline="") as f:
        csv.writer(f, delimiter="\t").writerows(
            [
                ["index", "question", "A", "B", "C", "D", "answer", "image"],
                [42, "Q?", "x", "y", "", "", "B", image],
            ]
        )
    (s,) = task.read(tmp_path / "AI2D_TEST.tsv")
    assert (s.id, s.options, s.answer) == ("42", ["x", "y"], "B")


def test_vsr_and_tallyqa_options_for_likelihood(tmp_path):
    task, samples, _ = read("vsr", tmp_path / "vsr")
    s = samples["0"]
    assert (s.options, s.answer, samples["1"].answer) == (["True", "False"], "True", "False")
    assert task.prompt(s, "llava15") == (
        "Is the following statement about the image true or false? The cat is on the bed." + SHORT
    )
    gold = [x.answer for x in samples.values()]
    assert task.score(list(samples.values()), gold).metrics["accuracy"] == 1.0  # likelihood replies
    task, samples, case = read("tallyqa", tmp_path / "tally")
    assert samples["11"].options == [str(n) for n in range(16)] and samples["12"].answer == "0"
    assert task.prompt(samples["11"], "llava15") == "How many dogs?" + SHORT
    scores = task.score(list(samples.values()), [case.replies[i] for i in samples])
    assert {k: v["accuracy"] for k, v in scores.breakdown.items()} == {"complex": 1.0, "simple": 0.5}


def test_clear_errors_for_missing_files_and_fields(tmp_path, capsys):
    (tmp_path / "problems.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="ScienceQA splits"):
        get_task("scienceqa_img").read(tmp_path)
    write_json(
        tmp_path / "g" / "testdev_balanced_questions.json",
        {"1": {"imageId": "x", "question": "q?", "types": {}}},
    )
    with pytest.raises(ValueError, match=r"question 1: missing field\(s\) \['answer'\]"):
        get_task("gqa").read(tmp_path / "g")
    with pytest.raises(FileNotFoundError, match="no subtask folders"):
        get_task("mme").read(tmp_path)
    task = get_task("mmbench")
    rows = [[*r[:7], "", r[8]] for r in MMB_BASE]  # the test split has no answers
    samples = task.read(write_tsv(tmp_path / "test.tsv", rows))
    with pytest.raises(ValueError, match="without answers"):
        task.score(samples, ["A"] * len(samples))
    case = build("vsr", tmp_path / "v")
    answers = write_json(tmp_path / "partial.json", [{"question_id": "0", "text": "True"}])
    args = ["eval", "score", "--task", "vsr", "--data", str(case.data), "--predictions", str(answers)]
    assert main(args) == 2
    assert "answers 1 of 4 samples" in capsys.readouterr().err


def test_more_lmms_eval_parquet_layouts(tmp_path):
    image = {"bytes": png(), "path": None}
    rows = [
        {
            "question_id": "VizWiz_val_00000005",
            "question": "What is it?",
            "answers": ["tea"] * 10,
            "category": "other",
            "image": image,
        }
    ]
    (s,) = get_task("vizwiz").read(write_parquet(tmp_path / "vizwiz" / "val-0.parquet", rows))
    assert (s.id, s.answer[0], s.meta["answer_type"]) == ("VizWiz_val_00000005", "tea", "other")
    rows = [
        {
            "question": "Which is hot?",
            "choices": ["ice", "fire"],
            "answer": 1,
            "hint": "Look.",
            "image": image,
        }
    ]
    (s,) = get_task("scienceqa_img").read(write_parquet(tmp_path / "sqa" / "test-0.parquet", rows))
    assert (s.id, s.question, s.options, s.answer) == (
        "0",
        "Context: Look.\nWhich is hot?",
        ["ice", "fire"],
        "B",
    )
    seed = {
        "question": "Q?",
        "choice_a": "a",
        "choice_b": "b",
        "choice_c": "c",
        "choice_d": "d",
        "answer": "D",
        "question_type_id": 9,
        "data_id": "x.jpg",
        "image": [image],
    }
    rows = [
        {**seed, "question_id": "1", "data_type": "image"},
        {**seed, "question_id": "2", "data_type": "video"},
    ]
    (s,) = get_task("seed_bench").read(write_parquet(tmp_path / "seed" / "test-0.parquet", rows))
    assert (s.id, s.answer, s.meta["question_type"]) == ("1", "D", "9 Text Understanding")
    assert s.images[0].load(s.id).size == (8, 6)
