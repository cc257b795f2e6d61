"""MaskEmbed: mask sampling, pixel and token masking, the loss, and the stage on CLIP / SigLIP / DINOv2 towers."""

import pytest
import torch
from transformers import AutoImageProcessor, AutoModel, CLIPConfig, CLIPImageProcessor, CLIPModel

from vlm.data.maskembed import MaskedImages, sample_masks
from vlm.tiny.backbone import tiny_path
from vlm.train.config import DataConfig, StageConfig
from vlm.train.stages.maskembed import MaskEmbedOptions, MaskEmbedStage, mask_pixels, mask_tokens


def test_masks_are_m_complement_and_ones_with_uniform_keep_rate():
    rates = []
    for seed in range(400):
        masks = sample_masks(64, torch.Generator().manual_seed(seed))
        assert masks.shape == (3, 64) and set(masks.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(masks[1], 1 - masks[0]) and torch.equal(masks[2], torch.ones(64))
        rates.append(masks[0].mean().item())
    rates = torch.tensor(rates)
    assert rates.min() < 0.1 and rates.max() > 0.9  # nearly empty to nearly full
    assert abs(rates.mean().item() - 0.5) < 0.05
    assert abs((rates < 0.5).float().mean().item() - 0.5) < 0.1  # keep rate ~ U(0, 1): as many below as above
    narrow = sample_masks(10_000, torch.Generator().manual_seed(0), 0.4, 0.6)[0].mean()
    assert 0.39 < narrow < 0.61
    assert torch.equal(sample_masks(64, torch.Generator().manual_seed(3)), sample_masks(64, torch.Generator().manual_seed(3)))


def test_pixel_masking_zeroes_exactly_the_masked_patches():
    pixels = torch.randn(2, 3, 16, 16)
    masks = torch.zeros(2, 3, 4)  # 2x2 patches of 8 px
    masks[0, 0] = torch.tensor([1.0, 0.0, 0.0, 1.0])
    masks[:, 2] = 1
    out = mask_pixels(pixels, masks, 8)
    assert out.shape == (6, 3, 16, 16)
    assert torch.equal(out[0, :, :8, :8], pixels[0, :, :8, :8]) and torch.equal(out[0, :, 8:, 8:], pixels[0, :, 8:, 8:])
    assert (out[0, :, :8, 8:] == 0).all() and (out[0, :, 8:, :8] == 0).all()
    assert (out[1] == 0).all() and torch.equal(out[2], pixels[0]) and torch.equal(out[5], pixels[1])


def test_token_masking_zeroes_prefix_and_masked_patches():
    tokens = torch.randn(1, 1 + 4, 6)  # CLS + 4 patches
    masks = torch.tensor([[[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]])
    out = mask_tokens(tokens, masks)
    assert out.shape == (3, 5, 6) and (out[:, 0] == 0).all()
    assert torch.equal(out[0, 1], tokens[0, 1]) and (out[0, 2] == 0).all()
    assert torch.equal(out[2, 1:], tokens[0, 1:])


@pytest.mark.parametrize("family,prefix", [("tiny-clip", 1), ("tiny-siglip", 0), ("tiny-dinov2", 1)])
def test_stage_loss_on_vit_families(family, prefix):
    folder = tiny_path(family)
    cfg = StageConfig(name="a", kind="maskembed", train={"vision": "full"}, options=MaskEmbedOptions(),
                      data=DataConfig(n_images=4, image_size=64))
    stage = MaskEmbedStage(cfg)
    model = stage.prepare(stage.load(folder))
    processor = stage.load_processor(folder)
    data = stage.dataset(processor, seed=0)
    batch = MaskedImages.collate([data[i] for i in range(2)])
    assert batch["masks"].shape == (2, 3, 64) and stage.count_items(batch) == 6
    loss = stage.loss(model, batch, torch.tensor(6.0))
    # the loss is the MSE over all tokens and channels of each (image, mask) view, averaged over views;
    # the targets are the original's last-layer tokens (every hidden state of the last block, prefix included)
    with torch.no_grad():
        rec = model(batch["pixel_values"], batch["masks"])
        masked = mask_pixels(batch["pixel_values"], batch["masks"], 8)
        target = AutoModel.from_pretrained(folder)(pixel_values=masked, output_hidden_states=True).hidden_states[-1]
    assert rec.shape == target.shape == (6, prefix + 64, 64)
    assert loss.item() == pytest.approx(torch.nn.functional.mse_loss(rec, target).item(), rel=1e-5)
    loss.backward()
    embeddings = model.vision_tower.model.embeddings
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in embeddings.parameters())
    assert model.decoder.head.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in stage.teacher.parameters())


def test_finished_student_saves_in_the_original_format(tmp_path):
    folder = tiny_path("tiny-clip")
    stage = MaskEmbedStage(StageConfig(name="a", kind="maskembed", train={"vision": "full"}))
    model = stage.prepare(stage.load(folder))
    with torch.no_grad():
        model.vision_tower.model.embeddings.patch_embedding.weight.add_(1.0)
    stage.finish(model).save_pretrained(tmp_path)
    again = AutoModel.from_pretrained(tmp_path)
    assert type(again) is type(AutoModel.from_pretrained(folder))
    assert torch.equal(again.embeddings.patch_embedding.weight, model.vision_tower.model.embeddings.patch_embedding.weight)
    assert AutoImageProcessor.from_pretrained(tmp_path).to_dict() == AutoImageProcessor.from_pretrained(folder).to_dict()
    with pytest.raises(ValueError, match="vision=full"):
        MaskEmbedStage(StageConfig(name="a", kind="maskembed", train={"vision": "frozen"}))


def test_student_of_a_whole_clip_folder_keeps_its_text_tower(tmp_path):
    """A CLIPModel folder (image and text towers): the result is a CLIPModel again, only its vision part changed."""
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=99, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32).save_pretrained(tmp_path / "clip")
    stage = MaskEmbedStage(StageConfig(name="a", kind="maskembed", train={"vision": "full"}))
    model = stage.prepare(stage.load(tmp_path / "clip"))
    with torch.no_grad():
        model.vision_tower.model.embeddings.patch_embedding.weight.add_(1.0)
    stage.finish(model).save_pretrained(tmp_path / "aligned")
    original, aligned = AutoModel.from_pretrained(tmp_path / "clip"), AutoModel.from_pretrained(tmp_path / "aligned")
    assert type(aligned) is CLIPModel
    changed = {k for k, v in aligned.state_dict().items() if not torch.equal(v, original.state_dict()[k])}
    assert changed == {"vision_model.embeddings.patch_embedding.weight"}


def test_masked_images_honour_first_image():
    from vlm.shapes.world import SyntheticWorld

    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    data = MaskedImages(DataConfig(n_images=2, first_image=5, image_size=64), processor, side=4)
    expected = processor(images=[SyntheticWorld("train", 64).image(6)], return_tensors="pt")["pixel_values"][0]
    assert len(data) == 2 and torch.equal(data[1]["pixel_values"], expected)
    assert not torch.equal(MaskedImages(DataConfig(n_images=2, image_size=64), processor, side=4)[1]["pixel_values"], expected)
