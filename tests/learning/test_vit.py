"""The plain-torch ViT: timm key layout, config from metadata / JSON / shapes, embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from histolabel.learning import vit

TINY = vit.ViTConfig(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4)

# The keys of one block of timm's vit_large_patch16_224 (init_values set, num_classes=0).
TIMM_BLOCK_KEYS = {
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
    "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
    "mlp.fc2.bias", "ls2.gamma",
}  # fmt: skip


def test_state_dict_keys_and_shapes_follow_timm_vit_large() -> None:
    with torch.device("meta"):
        model = vit.VisionTransformer(vit.ViTConfig())
    state = model.state_dict()
    top = {k for k in state if not k.startswith("blocks.")}
    assert top == {
        "cls_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "norm.weight",
        "norm.bias",
    }
    assert {k.split(".", 2)[2] for k in state if k.startswith("blocks.0.")} == TIMM_BLOCK_KEYS
    assert len({k.split(".")[1] for k in state if k.startswith("blocks.")}) == 24
    assert tuple(state["pos_embed"].shape) == (1, 197, 1024)
    assert tuple(state["blocks.0.attn.qkv.weight"].shape) == (3072, 1024)
    assert tuple(state["blocks.0.mlp.fc1.weight"].shape) == (4096, 1024)
    assert sum(v.numel() for v in state.values()) == pytest.approx(303.3e6, rel=0.01)  # UNI: ~303M


def _patches(n: int = 5) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, size=(n, 3, 48, 48), dtype=np.uint8)


def test_weights_with_metadata_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = vit.VisionTransformer(TINY).eval()
    with torch.no_grad():  # trained-like layer scales, so the blocks matter
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
    path = tmp_path / "uni.safetensors"
    vit.save_local(model, path)
    again = vit.load_local(path)
    assert again.cfg == TINY
    a, b = vit.embed(model, _patches()), vit.embed(again, _patches())
    assert a.shape == (5, 64)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert np.abs(a[0] - a[1]).max() > 1e-3  # different patches, different vectors


def test_plain_state_dict_with_config_json_beside_it(tmp_path: Path) -> None:
    torch.manual_seed(1)
    cfg = vit.ViTConfig(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=8)
    model = vit.VisionTransformer(cfg).eval()
    state = {f"module.{k}": v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({"model_args": {"num_heads": 8, "init_values": 1e-5}}))
    again = vit.load_local(tmp_path / "pytorch_model.bin")
    assert again.cfg.num_heads == 8 and again.cfg.depth == 2 and again.cfg.img_size == 32
    np.testing.assert_allclose(
        vit.embed(model, _patches()), vit.embed(again, _patches()), rtol=1e-5, atol=1e-5
    )


def test_other_input_size_resamples_positions() -> None:
    model = vit.VisionTransformer(TINY).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 48, 48))
    assert out.shape == (2, 64)


def test_bad_weights_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        vit.load_local(tmp_path / "missing.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a ViT state dict"):
        vit.load_local(tmp_path / "other.safetensors")
