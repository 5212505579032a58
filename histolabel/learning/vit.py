"""A Vision Transformer in plain torch whose state_dict keys match timm's VisionTransformer
(vit_large_patch16_224 as used by UNI: layer scale, CLS-token pooling, no head), so the
deployer's UNI-style weights load without timm. The architecture comes from the weights'
metadata, a JSON beside them, or the tensor shapes; nothing is downloaded."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViTConfig:
    img_size: int = 224
    patch_size: int = 16
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    layer_scale: bool = True  # UNI: init_values=1e-5, so blocks carry ls1/ls2 gammas
    num_classes: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ViTConfig:
        """From our own JSON or timm-style model args (init_values: None/0 = no layer scale);
        keys other tools add are ignored."""
        d = dict(d)
        if "init_values" in d and "layer_scale" not in d:
            d["layer_scale"] = bool(d.pop("init_values"))
        names = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {
            k: (tuple(v) if k in ("mean", "std") else v) for k, v in d.items() if k in names
        }
        return cls(**kwargs)


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, cfg.num_heads)
        self.ls1: nn.Module = LayerScale(d) if cfg.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))
        self.ls2: nn.Module = LayerScale(d) if cfg.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, cfg.patch_size, cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        grid = cfg.img_size // cfg.patch_size
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + 1, cfg.embed_dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.head: nn.Module = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes else nn.Identity()

    def _pos(self, n_patches: int) -> torch.Tensor:
        if n_patches + 1 == self.pos_embed.shape[1]:
            return self.pos_embed
        # Another input size: resample the position grid (timm's dynamic_img_size does the same).
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        g0, g1 = int(math.sqrt(grid.shape[1])), int(math.sqrt(n_patches))
        grid = grid.reshape(1, g0, g0, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(g1, g1), mode="bicubic", align_corners=False)
        return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, g1 * g1, -1)], dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self._pos(x.shape[1])
        return self.norm(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The CLS embedding [b, embed_dim] (or logits with a head)."""
        return self.head(self.forward_features(x)[:, 0])


def _clean_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("module.", "model.", "backbone."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def infer_config(state: dict[str, torch.Tensor], given: dict[str, Any] | None = None) -> ViTConfig:
    """Architecture from tensor shapes, overridden by what `given` states."""
    try:
        d = int(state["cls_token"].shape[-1])
        patch = int(state["patch_embed.proj.weight"].shape[-1])
        tokens = int(state["pos_embed"].shape[1]) - 1
    except KeyError as exc:
        raise ValueError(f"not a ViT state dict: missing {exc.args[0]!r}") from None
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
    inferred: dict[str, Any] = {
        "embed_dim": d,
        "patch_size": patch,
        "img_size": round(math.sqrt(tokens)) * patch,
        "depth": depth,
        "mlp_ratio": hidden / d,
        "layer_scale": "blocks.0.ls1.gamma" in state,
        "num_classes": int(state["head.weight"].shape[0]) if "head.weight" in state else 0,
        "num_heads": max(d // 64, 1),
    }
    return ViTConfig.from_dict({**inferred, **(given or {})})


def load_state(
    data: bytes, name: str = "weights.safetensors"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A state dict and any config found in safetensors metadata ('config' JSON)."""
    if name.endswith(".safetensors"):
        from safetensors.torch import load as st_load

        state = st_load(data)
        # The header (8-byte length, then JSON) holds the metadata; no need for a file.
        header_len = int.from_bytes(data[:8], "little")
        raw = json.loads(data[8 : 8 + header_len]).get("__metadata__", {}).get("config")
        return state, (json.loads(raw) if raw else {})
    import io

    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{name}: expected a state dict, got {type(obj).__name__}")
    return dict(obj), {}


def build_from_state(
    state: dict[str, torch.Tensor], config: dict[str, Any] | None = None
) -> VisionTransformer:
    state = _clean_keys(state)
    cfg = infer_config(state, config)
    model = VisionTransformer(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"weights do not fit the ViT: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    return model.eval()


def side_config(text: str) -> dict[str, Any]:
    """A config JSON beside the weights: ours, or a timm/HF config with `model_args`."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("the model config JSON must be an object")
    inner = raw.get("model_args", raw)
    return dict(inner) if isinstance(inner, dict) else {}


def load_bytes(data: bytes, name: str, side_json: str | None = None) -> VisionTransformer:
    state, config = load_state(data, name)
    if not config and side_json:
        config = side_config(side_json)
    return build_from_state(state, config)


def load_local(path: str | Path) -> VisionTransformer:
    """Weights from a local .safetensors/.bin/.pth; config from metadata, `<name>.json` or
    `config.json` beside it, else inferred from the tensors."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"foundation-model weights not found at {p}")
    side = next(
        (f.read_text() for f in (p.with_suffix(".json"), p.parent / "config.json") if f.is_file()), None
    )
    return load_bytes(p.read_bytes(), p.name, side)


def save_local(model: VisionTransformer, path: str | Path) -> None:
    """Weights as safetensors with the config in the metadata (for tests and re-packaging)."""
    from safetensors.torch import save_file

    cfg = asdict(model.cfg)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(cfg)})


def embed(
    model: VisionTransformer,
    patches: NDArray[np.uint8],
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> NDArray[np.float32]:
    """CLS embeddings of uint8 patches [n, 3, h, w], resized to the model's input size."""
    dev = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(dev)
    size = model.cfg.img_size
    mean = torch.tensor(model.cfg.mean, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(model.cfg.std, device=dev).view(1, 3, 1, 1)
    out = np.empty(
        (patches.shape[0], model.cfg.embed_dim if not model.cfg.num_classes else model.cfg.num_classes),
        np.float32,
    )
    amp = dev.type == "cuda"
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        for s in range(0, patches.shape[0], batch_size):
            x = torch.from_numpy(np.ascontiguousarray(patches[s : s + batch_size])).to(dev).float() / 255.0
            if x.shape[-1] != size or x.shape[-2] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            out[s : s + x.shape[0]] = model((x - mean) / std).float().cpu().numpy()
    return out
