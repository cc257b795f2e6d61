"""The eval runner: synthetic suite files read back, resume from cached replies, batch-size invariance,
unreadable images counted, `vlm eval score` agreeing with the run, likelihood scoring."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

import vlm.eval.runner as runner
from vlm.cli import main
from vlm.data.errors import BadSample
from vlm.eval.likelihood import continuation_logprobs
from vlm.eval.runner import EvalSettings, evaluate
from vlm.eval.task import TASKS, Sample, Scores, Task, get_task
from vlm.shapes.benchmarks import IMAGE_SIZE, write_pope, write_ref, write_vqa
from vlm.shapes.world import SyntheticWorld


@pytest.fixture(scope="module")
def model_path(built_models) -> Path:
    return built_models("tiny-clip", "mlp2x_gelu", "tiny-llama")


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["results"]


def _predictions(result: dict) -> list[str]:
    return [json.loads(line)["prediction"] for line in Path(result["predictions"]).read_text().splitlines()]


def test_synthetic_files_read_back_through_the_real_readers(tmp_path):
    world = SyntheticWorld("test", IMAGE_SIZE)
    for name, write in (("vqa", write_vqa), ("pope", write_pope), ("ref", write_ref)):
        (tmp_path / name).mkdir()
        write(tmp_path / name, n_images=3)
    vqa = get_task("vqav2").read(tmp_path / "vqa")
    expected = [r for i in range(3) for r in world.records(i, "vqa")]
    assert [s.answer for s in vqa] == [[r["answer"]] * 10 for r in expected]
    assert [s.meta["question_type"] for s in vqa] == [r["type"] for r in expected]
    assert vqa[0].images[0].load(vqa[0].id).size == (IMAGE_SIZE, IMAGE_SIZE)
    assert np.array_equal(np.asarray(vqa[0].images[0].load("x")), np.asarray(world.image(0)))

    pope = get_task("pope").read(tmp_path / "pope")
    assert len(pope) == 18 and sorted({s.meta["split"] for s in pope}) == ["adversarial", "popular", "random"]
    assert [s.answer for s in pope].count("yes") == 9

    ref_task = get_task("refcoco")
    ref = ref_task.read(tmp_path / "ref")
    boxes = [world.records(i, "ground")[0]["box"] for i in range(3)]
    for target, box in zip(ref_task.targets(ref), boxes, strict=True):
        assert target == pytest.approx(box)  # pixel xywh back to the world's [0, 1] boxes
    right = [f"[{', '.join(f'{v:.3f}' for v in b)}]" for b in boxes]
    assert ref_task.score(ref, right).metrics["acc@0.5"] == 1.0
    assert ref_task.score(ref, ["no box", *right[1:]]).metrics["acc@0.5"] == pytest.approx(2 / 3)


def test_ground_truth_replies_score_full_marks_and_chance_is_below(tmp_path):
    for name in ("synthetic_vqa", "synthetic_pope"):
        task = get_task(name)
        samples = task.read(task.default_data())
        truth = [s.answer[0] if isinstance(s.answer, list) else s.answer for s in samples]
        scores = task.score(samples, truth)
        assert scores.metrics[task.headline] == 1.0
        assert 0 < scores.chance[task.headline] < 1
    pope = get_task("synthetic_pope")
    samples = pope.read(pope.default_data())
    chance = pope.score(samples, ["no"] * len(samples)).chance
    assert chance["f1"] == pytest.approx(2 / 3) and chance["yes_ratio"] == 1.0  # always "yes" wins on F1


def test_interrupted_eval_resumes_without_redoing_answers(model_path, tmp_path, monkeypatch):
    settings = EvalSettings(str(model_path), ["synthetic_vqa"], batch_size=4, limit=10, out=str(tmp_path))
    first = evaluate(settings)["results"]["synthetic_vqa"]
    log = Path(first["predictions"])
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:4]) + "\n" + lines[4][:10])  # killed while writing line 5

    asked = []
    real = runner.generate_answers
    monkeypatch.setattr(
        runner, "generate_answers", lambda m, p, prompts, *a: asked.extend(prompts) or real(m, p, prompts, *a)
    )
    second = evaluate(settings)["results"]["synthetic_vqa"]
    assert len(asked) == 6
    assert _predictions(second) == _predictions(first) and second["metrics"] == first["metrics"]

    asked.clear()
    evaluate(EvalSettings(**{**settings.__dict__, "style": "plain"}))
    assert len(asked) == 10  # other settings: other cache file, nothing reused


def test_batch_size_does_not_change_any_answer(model_path, tmp_path):
    base = {"model": str(model_path), "tasks": ["synthetic_vqa", "synthetic_pope"], "limit": 9}
    one = evaluate(EvalSettings(**base, batch_size=1, out=str(tmp_path / "one")))["results"]
    many = evaluate(EvalSettings(**base, batch_size=5, out=str(tmp_path / "many")))["results"]
    for name in base["tasks"]:
        assert _predictions(one[name]) == _predictions(many[name])


def _vqa_folder(root: Path, missing: bool) -> Path:
    (root / "val2014").mkdir(parents=True)
    questions, annotations = [], []
    for i in range(3):
        if not (missing and i == 1):
            Image.new("RGB", (32, 24), (40 * i, 90, 200)).save(
                root / "val2014" / f"COCO_val2014_{i:012d}.jpg"
            )
        questions.append({"image_id": i, "question": f"What colour {i}?", "question_id": 10 + i})
        answers = [{"answer": "blue", "answer_confidence": "yes", "answer_id": j} for j in range(10)]
        annotations.append(
            {"question_id": 10 + i, "answer_type": "other", "question_type": "what", "answers": answers}
        )
    (root / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(
        json.dumps({"data_subtype": "val2014", "questions": questions})
    )
    (root / "v2_mscoco_val2014_annotations.json").write_text(json.dumps({"annotations": annotations}))
    return root


def test_unreadable_image_is_counted_and_scored_wrong_or_stops_in_strict_mode(model_path, tmp_path):
    data = _vqa_folder(tmp_path / "vqav2", missing=True)
    settings = EvalSettings(str(model_path), ["vqav2"], data={"vqav2": str(data)}, out=str(tmp_path / "out"))
    result = evaluate(settings)["results"]["vqav2"]
    assert result["n"] == 3 and result["bad_samples"] == 1
    assert result["errors"][0]["id"] == "11" and "not found" in result["errors"][0]["error"]
    with pytest.raises(BadSample, match="not found"):
        evaluate(EvalSettings(**{**settings.__dict__, "strict": True, "out": str(tmp_path / "strict")}))


def test_score_command_reproduces_the_run(model_path, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "run",
                "--model",
                str(model_path),
                "--tasks",
                "synthetic_pope",
                "--limit",
                "12",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = _results(out)["synthetic_pope"]
    task = get_task("synthetic_pope")
    ids = [s.id for s in task.read(task.default_data())]
    replies = tmp_path / "answers.jsonl"  # a full answer file in LLaVA's layout (question_id + text)
    rows = [{"question_id": i.split("_", 1)[1], "category": i.split("_", 1)[0], "text": "yes"} for i in ids]
    replies.write_text("\n".join(json.dumps(r) for r in rows))
    capsys.readouterr()
    assert main(["eval", "score", "--task", "synthetic_pope", "--predictions", str(replies), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["metrics"]["f1"] == pytest.approx(
        scored["chance"]["f1"]
    )  # always "yes" is the chance reply
    assert result["chance"]["yes_ratio"] == 1.0
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(json.dumps(r) for r in rows[:5]))
    assert main(["eval", "score", "--task", "synthetic_pope", "--predictions", str(short)]) == 2
    assert "answers 5 of 900 samples" in capsys.readouterr().err
    assert main(["eval", "run", "--model", str(model_path), "--tasks", "vqav2"]) == 2
    assert "--data vqav2=PATH" in capsys.readouterr().err
    assert main(["eval", "run", "--model", str(model_path), "--tasks", "nope"]) == 2
    assert "unknown eval task 'nope'" in capsys.readouterr().err


class _Colours(Task):
    """A test-only multiple-choice task (options in the sample) for likelihood mode."""

    kind = "choice"

    def read(self, data: Path) -> list[Sample]:
        colours = [(200, 30, 30), (30, 200, 30)]
        samples = []
        for i, rgb in enumerate(colours):
            image = data / f"{i}.png"
            Image.new("RGB", (24, 24), rgb).save(image)
            from vlm.eval.task import ImageRef

            samples.append(
                Sample(str(i), "Which colour?", [ImageRef(image.name, data)], "AB"[i], ["red", "green"])
            )
        return samples

    def score(self, samples, predictions) -> Scores:
        return Scores(
            {"accuracy": sum(p == s.answer for s, p in zip(samples, predictions, strict=True)) / len(samples)}
        )


def test_likelihood_mode_picks_the_most_likely_option_letter(model_path, tmp_path):
    if "_test_colours" not in TASKS:
        TASKS.register("_test_colours", _Colours)
    out = evaluate(
        EvalSettings(
            str(model_path),
            ["_test_colours"],
            data={"_test_colours": str(tmp_path)},
            mode="likelihood",
            out=str(tmp_path / "o"),
        )
    )["results"]["_test_colours"]
    model, processor = (
        AutoModelForImageTextToText.from_pretrained(model_path),
        AutoProcessor.from_pretrained(model_path),
    )
    task = get_task("_test_colours")
    for sample, prediction in zip(task.read(tmp_path), _predictions(out), strict=True):
        messages, images = runner.prompt_for(
            task, sample, "llava15", [r.load(sample.id) for r in sample.images]
        )
        scores = continuation_logprobs(model, processor, messages, images, ["A", "B"])
        assert prediction == "AB"[scores.index(max(scores))]


def test_continuation_logprob_equals_the_models_own_loss(model_path, images):
    """Summed log-probability of a continuation = -(the LM's mean label loss) x (its token count), the loss
    computed by the model's own head with the prompt masked out; and greedy output is flagged greedy."""
    model, processor = (
        AutoModelForImageTextToText.from_pretrained(model_path),
        AutoProcessor.from_pretrained(model_path),
    )
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]}]
    prompt = processor.apply_chat_template([messages], add_generation_prompt=True, tokenize=False)[0]
    continuation = " a red circle"
    prompt_ids = processor(text=[prompt], images=[[images[0]]], return_tensors="pt")["input_ids"]
    full = processor(text=[prompt + continuation], images=[[images[0]]], return_tensors="pt")
    labels = full["input_ids"].clone()
    labels[:, : prompt_ids.shape[1]] = -100
    n = int((labels != -100).sum())
    with torch.inference_mode():
        loss = model(**full, labels=labels).loss
    (logprob,) = continuation_logprobs(model, processor, messages, [images[0]], [continuation])
    assert logprob == pytest.approx(-float(loss) * n, rel=1e-5)

    inputs = processor(text=[prompt], images=[[images[0]]], return_tensors="pt")
    with torch.inference_mode():
        new = model.generate(**inputs, max_new_tokens=3, do_sample=False)[0, prompt_ids.shape[1] :]
    greedy_text = prompt + processor.tokenizer.decode(new)
    if processor.tokenizer(greedy_text)["input_ids"][-3:] == new.tolist():  # survives decode/encode
        ((_, greedy),) = continuation_logprobs(
            model, processor, messages, [images[0]], [processor.tokenizer.decode(new)], with_greedy=True
        )
        assert greedy
    ((_, not_greedy),) = continuation_logprobs(
        model, processor, messages, [images[0]], [continuation], with_greedy=True
    )
    assert not_greedy == bool(
        (
            model(**full).logits[0, prompt_ids.shape[1] - 1 : -1].argmax(-1)
            == full["input_ids"][0, prompt_ids.shape[1] :]
        ).all()
    )
