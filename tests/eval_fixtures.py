"""Tiny benchmark fixtures written by code in each benchmark's released format (and lmms-eval's
parquet where one exists), each with hand-written replies and the hand-worked scores they earn."""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

SHORT = "\nAnswer the question using a single word or phrase."
LETTER = "\nAnswer with the option's letter from the given choices directly."


def png(path: Path | None = None, colour: int = 0, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (colour, 100, 200)).save(buffer, format=fmt)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def write_json(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@dataclass
class Case:
    """A fixture: where it is, LLaVA-style replies by sample id, and the hand-worked metrics."""

    data: Path
    replies: dict[str, str]
    metrics: dict[str, float]
    chance: dict[str, float]


def gqa(tmp: Path) -> Case:
    qs = {
        "201": ("n1", "What is on the floor?", "table", "query"),
        "202": ("n1", "Is the table wooden?", "yes", "verify"),
        "203": ("n2", "Is it red and round?", "no", "logical"),
        "204": ("n2", "What colour is the car?", "red", "query"),
    }
    doc = {
        q: {"imageId": i, "question": t, "answer": a, "types": {"structural": s}}
        for q, (i, t, a, s) in qs.items()
    }
    write_json(tmp / "testdev_balanced_questions.json", doc)
    for name in ("n1", "n2"):
        png(tmp / "images" / f"{name}.jpg", fmt="JPEG")
    replies = {"201": "Table.", "202": "yes", "203": "yes", "204": "red"}
    # right: 201 (rstrip '.', lower), 202, 204; open = 201, 204; binary = 202 right, 203 wrong
    # chance: every answer once, each constant 1/4; "table" first: open 1/2, binary 0
    return Case(tmp, replies, {"accuracy": 0.75, "open": 1.0, "binary": 0.5}, {"accuracy": 0.25, "open": 0.5})


def textvqa(tmp: Path) -> Case:
    data = [
        {
            "question_id": 34602,
            "question": "what brand is the phone?",
            "image_id": "a1",
            "ocr_tokens": ["nokia", "3310"],
            "answers": ["nokia"] * 4 + ["nokia 3310"] * 6,
        },
        {
            "question_id": 34603,
            "question": "what does the sign say?",
            "image_id": "a2",
            "answers": ["stop"] * 2 + ["stop sign"] * 8,
        },
        {
            "question_id": 34604,
            "question": "what colour is the bus?",
            "image_id": "a3",
            "answers": ["red"] * 10,
        },
    ]
    write_json(tmp / "TextVQA_0.5.1_val.json", {"dataset_name": "textvqa", "data": data})
    ocr = [{"image_id": "a2", "ocr_tokens": ["stop"]}, {"image_id": "a3", "ocr_tokens": []}]
    write_json(tmp / "TextVQA_Rosetta_OCR_v0.2_val.json", {"data": ocr})
    for name in ("a1", "a2", "a3"):
        png(tmp / "train_images" / f"{name}.jpg", fmt="JPEG")
    replies = {"34602": "Nokia", "34603": "stop", "34604": "blue"}
    # 4 humans -> 1.0, 2 humans -> 0.6, none -> 0; chance: "red" (or "stop sign", "nokia 3310") = 1/3
    return Case(tmp, replies, {"accuracy": 1.6 / 3}, {"accuracy": 1 / 3})


def vizwiz(tmp: Path) -> Case:
    def answers(*pairs: tuple[str, int]) -> list[dict]:
        return [{"answer": a, "answer_confidence": "yes"} for a, k in pairs for _ in range(k)]

    rows = [
        {
            "image": "VizWiz_val_00000000.jpg",
            "question": "What is this?",
            "answers": answers(("unanswerable", 10)),
            "answerable": 0,
            "answer_type": "unanswerable",
        },
        {
            "image": "VizWiz_val_00000001.jpg",
            "question": "What drink is this?",
            "answers": answers(("coffee", 3), ("tea", 7)),
            "answerable": 1,
            "answer_type": "other",
        },
        {
            "image": "VizWiz_val_00000002.jpg",
            "question": "Is it on?",
            "answers": answers(("yes", 10)),
            "answerable": 1,
            "answer_type": "yes/no",
        },
    ]
    write_json(tmp / "val.json", rows)
    for row in rows:
        png(tmp / "val" / row["image"], fmt="JPEG")
    replies = {
        "VizWiz_val_00000000": "Unanswerable",
        "VizWiz_val_00000001": "coffee",
        "VizWiz_val_00000002": "no",
    }
    # 1.0 + 0.9 (3 humans) + 0; chance: one constant for all ("unanswerable", "tea" or "yes") = 1/3
    return Case(tmp, replies, {"accuracy": 1.9 / 3}, {"accuracy": 1 / 3})


MME_QUESTIONS = {
    ("existence", "0001"): [
        ("Is there a dog in this image? Please answer yes or no.", "Yes"),
        ("Is there a cat in this image? Please answer yes or no.", "No"),
    ],
    ("existence", "0002"): [
        ("Is there a car in this image? Please answer yes or no.", "Yes"),
        ("Is there a bus in this image? Please answer yes or no.", "No"),
    ],
    ("artwork", "10002"): [
        ("Is this artwork created by Monet? Please answer yes or no.", "Yes"),
        ("Is this artwork created by Goya? Please answer yes or no.", "No"),
    ],
    ("code_reasoning", "0020"): [
        ("Is the output 5? Please answer yes or no.", "Yes"),
        ("Is the output 6? Please answer yes or no.", "No"),
    ],
}


def mme(tmp: Path) -> Case:
    root = tmp / "MME_Benchmark_release_version"
    for (subtask, stem), qa in MME_QUESTIONS.items():
        text = "".join(f"{q}\t{a}\n" for q, a in qa)
        if subtask == "artwork":  # images/ + questions_answers_YN/, the other layout
            png(root / subtask / "images" / f"{stem}.jpg", fmt="JPEG")
            (root / subtask / "questions_answers_YN").mkdir(parents=True, exist_ok=True)
            (root / subtask / "questions_answers_YN" / f"{stem}.txt").write_text(text)
        else:
            png(root / subtask / f"{stem}.png")
            (root / subtask / f"{stem}.txt").write_text(text)
    replies = {
        "existence/0001.png#0": "Yes",
        "existence/0001.png#1": "No",
        "existence/0002.png#0": "No",
        "existence/0002.png#1": "No",
        "artwork/10002.jpg#0": "Yes, it is.",
        "artwork/10002.jpg#1": "yes",
        "code_reasoning/0020.png#0": "yes",
        "code_reasoning/0020.png#1": "no",
    }
    # existence: acc 3/4, acc+ 1/2 -> 125; artwork: 1/2, 0 -> 50; perception 175; code_reasoning 200
    # chance ("yes" everywhere): 50 per subtask
    metrics = {"perception": 175.0, "cognition": 200.0, "total": 375.0}
    return Case(tmp, replies, metrics, {"perception": 100.0, "cognition": 50.0, "total": 150.0})


MMB_COLUMNS = [
    "index",
    "question",
    "hint",
    "A",
    "B",
    "C",
    "D",
    "answer",
    "category",
    "image",
    "l2-category",
    "split",
]
MMB_BASE = [
    [0, "Which animal is it?", "Look at the animal.", "cat", "dog", "bird", "", "B", "attribute"],
    [1, "What colour is it?", "nan", "red", "blue", "", "", "A", "color"],
]
MMB_COPIES = [  # the released dev TSV's circular copies: options shifted left, answer following
    [1000000, "Which animal is it?", "Look at the animal.", "dog", "bird", "cat", "", "A", "attribute"],
    [2000000, "Which animal is it?", "Look at the animal.", "bird", "cat", "dog", "", "C", "attribute"],
    [1000001, "What colour is it?", "nan", "blue", "red", "", "", "B", "color"],
]


def write_tsv(path: Path, rows: list[list]) -> Path:
    image = base64.b64encode(png()).decode()
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(MMB_COLUMNS)
        for row in rows:  # a copy refers to its question's image by index, as VLMEvalKit's TSVs do
            writer.writerow([*row, image if row[0] < 1000000 else row[0] % 1000000, "perception", "dev"])
    return path


def mmbench(tmp: Path) -> Case:
    write_tsv(tmp / "mmbench_dev_20230712.tsv", MMB_BASE + MMB_COPIES)
    replies = {"0": "B", "1000000": "A. dog", "2000000": "The answer is B", "1": "red", "1000001": "B"}
    # question 0: rotation 2 picks B (answer C) -> wrong in CircularEval; question 1: A by text, then B
    # chance: a constant letter never survives every rotation
    return Case(tmp, replies, {"circular": 0.5, "vanilla": 1.0}, {"circular": 0.0})


def scienceqa(tmp: Path) -> Case:
    def problem(question, choices, answer, hint, image, subject):
        return {
            "question": question,
            "choices": choices,
            "answer": answer,
            "hint": hint,
            "image": image,
            "subject": subject,
            "grade": "grade3",
            "split": "test",
        }

    problems = {
        "1": problem(
            "Which is a mammal?",
            ["shark", "whale"],
            1,
            "Whales live in the sea.",
            "image.png",
            "natural science",
        ),
        "2": problem("Which word rhymes?", ["cat", "hat"], 0, "", None, "language science"),
        "3": problem("Which word is a noun?", ["run", "blue", "dog"], 2, "", "image.png", "language science"),
        "4": problem("Which is a state?", ["Ohio", "Paris"], 0, "", "image.png", "social science"),
        "5": problem(
            "Which continent is highlighted?", ["Asia", "Europe"], 0, "", "image.png", "social science"
        ),
    }
    write_json(tmp / "problems.json", problems)
    write_json(tmp / "pid_splits.json", {"train": ["4"], "test": ["1", "2", "3", "5"]})
    for pid in ("1", "3", "4", "5"):
        png(tmp / "test" / pid / "image.png")
    replies = {"1": "B", "3": "C.", "5": "The answer is A."}
    # "C." is neither a bare letter nor "X. ..." -> wrong (LLaVA's rules); chance: each letter 1/3
    return Case(tmp, replies, {"accuracy": 2 / 3}, {"accuracy": 1 / 3})


def seed_bench(tmp: Path) -> Case:
    def q(qid, tid, answer, data_type="image"):
        return {
            "question_id": qid,
            "data_id": f"{qid}_1.jpg",
            "question": f"Question {qid}?",
            "choice_a": "a",
            "choice_b": "b",
            "choice_c": "c",
            "choice_d": "d",
            "answer": answer,
            "question_type_id": tid,
            "data_type": data_type,
        }

    questions = [q("101", 1, "A"), q("102", 1, "C"), q("103", 2, "B"), q("v1", 10, "A", "video")]
    types = {"Scene Understanding": 1, "Instance Identity": 2, "Action Recognition": 10}
    write_json(tmp / "SEED-Bench.json", {"questions": questions, "question_type": types})
    for qid in ("101", "102", "103"):
        png(tmp / "SEED-Bench-image" / f"{qid}_1.jpg", fmt="JPEG")
    replies = {"101": "A", "102": "C.", "103": " B "}
    # exact letter after strip: 101 and 103 right; chance A, B or C: 1/3
    return Case(tmp, replies, {"accuracy": 2 / 3}, {"accuracy": 1 / 3})


def ai2d(tmp: Path) -> Case:
    rows = [
        {"question": "Which gives light?", "options": ["sun", "moon", "star"], "answer": "0"},
        {"question": "Which is underground?", "options": ["leaf", "root"], "answer": "1"},
        {"question": "Which stage is last?", "options": ["egg", "larva", "pupa", "adult"], "answer": "3"},
    ]
    write_parquet(
        tmp / "test-00000-of-00001.parquet", [{**r, "image": {"bytes": png(), "path": None}} for r in rows]
    )
    replies = {"0": "A", "1": "The answer is root", "2": "C"}
    # "root" is the only option text in reply 1 -> B (right); chance: A, B or D once each = 1/3
    return Case(tmp, replies, {"accuracy": 2 / 3}, {"accuracy": 1 / 3})


def vsr(tmp: Path) -> Case:
    rows = [
        ("a.jpg", "The cat is on the bed.", 1, "on"),
        ("b.jpg", "The dog is under the car.", 0, "under"),
        ("c.jpg", "The cup is on the table.", 1, "on"),
        ("d.jpg", "The man is left of the horse.", 1, "left of"),
    ]
    lines = [json.dumps({"image": i, "caption": c, "label": lab, "relation": r}) for i, c, lab, r in rows]
    (tmp / "test.jsonl").write_text("\n".join(lines) + "\n")
    for image, *_ in rows:
        png(tmp / "images" / image, fmt="JPEG")
    replies = {"0": "True", "1": "no", "2": "False.", "3": "Yes"}
    # "no" reads as False (right), "False." on a true caption is wrong; chance: "True" = 3/4
    return Case(tmp, replies, {"accuracy": 0.75}, {"accuracy": 0.75})


def tallyqa(tmp: Path) -> Case:
    rows = [
        {
            "image": "VG_100K/1.jpg",
            "question": "How many dogs?",
            "answer": 2,
            "issimple": True,
            "question_id": 11,
        },
        {
            "image": "val2014/COCO_val2014_000000000002.jpg",
            "question": "How many people wear hats?",
            "answer": 0,
            "issimple": False,
            "question_id": 12,
        },
        {
            "image": "VG_100K/3.jpg",
            "question": "How many birds?",
            "answer": 3,
            "issimple": True,
            "question_id": 13,
        },
    ]
    write_json(tmp / "test.json", rows)
    for row in rows:
        png(tmp / row["image"], fmt="JPEG")
    replies = {"11": "2", "12": "none", "13": "Two."}
    # "none" normalises to "0" (right), "Two." to "2" (wrong: 3); chance: "0", "2" or "3" = 1/3
    return Case(tmp, replies, {"accuracy": 2 / 3}, {"accuracy": 1 / 3})


CASES = {
    "gqa": gqa,
    "textvqa": textvqa,
    "vizwiz": vizwiz,
    "mme": mme,
    "mmbench": mmbench,
    "scienceqa_img": scienceqa,
    "seed_bench": seed_bench,
    "ai2d": ai2d,
    "vsr": vsr,
    "tallyqa": tallyqa,
}


def build(name: str, tmp: Path) -> Case:
    tmp.mkdir(parents=True, exist_ok=True)
    return CASES[name](tmp)
