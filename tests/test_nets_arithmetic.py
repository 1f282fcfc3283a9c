"""The noise predictors' arithmetic, not only their shapes (course_utils/nets.py; a mutation audit found these
untested): each block computed from its docstring with its own weights, the UNet's skip wiring traced layer by
layer, the null class's embedding row, dropout's place and rate, the group-norm group choice, and the parameter
count's requires_grad filter.

The references below use the modules' weights with torch.nn.functional, so a change of formula shows at 1e-5.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.nets import (AttentionBlock, MLPDenoiser, NoisyClassifier, ResBlock, SinusoidalTimeEmbedding, UNet,
                              _groups, _Upsample, count_parameters, sinusoidal_embedding)

ATOL = 1e-5


# ------------------------------------------------------------------ time embedding
def test_time_embedding_is_linear_silu_linear_of_the_sinusoidal_features():
    torch.manual_seed(0)
    emb = SinusoidalTimeEmbedding(16, 32)
    t = torch.tensor([0, 3, 250, 999])
    feats = sinusoidal_embedding(t, 16)
    expected = F.linear(F.silu(F.linear(feats, emb.mlp[0].weight, emb.mlp[0].bias)), emb.mlp[2].weight, emb.mlp[2].bias)
    assert torch.allclose(emb(t), expected, atol=ATOL)


def test_sinusoidal_pairs_lie_on_the_unit_circle_and_the_first_frequency_is_one():
    """sin^2 + cos^2 = 1 for every frequency; w_0 = 1, so feature 0 is sin(t) and feature half is cos(t)."""
    t = torch.tensor([0.0, 1.0, 2.5, 40.0])
    emb = sinusoidal_embedding(t, 12)
    assert torch.allclose(emb[:, :6] ** 2 + emb[:, 6:] ** 2, torch.ones(4, 6), atol=1e-6)
    assert torch.allclose(emb[:, 0], torch.sin(t), atol=1e-6) and torch.allclose(emb[:, 6], torch.cos(t), atol=1e-6)
    w_last = 10000.0 ** (-5 / 6)                                       # i = half - 1 = 5, half = 6
    assert torch.allclose(emb[:, 5], torch.sin(t * w_last), atol=1e-6)


# ------------------------------------------------------------------ group-norm groups
@pytest.mark.parametrize("channels,groups,expected", [
    (32, 8, 8), (48, 8, 8), (12, 8, 4), (6, 8, 2), (3, 8, 1), (7, 8, 1), (24, 32, 8), (10, 4, 2), (1, 8, 1)])
def test_groups_halves_until_the_channels_divide(channels, groups, expected):
    assert _groups(channels, groups) == expected


def test_every_group_norm_uses_the_configured_groups():
    """ResBlock's default is 8 groups; a UNet passes its ``groups`` to every norm (all widths here divide by 4)."""
    assert ResBlock(16, 32, 8).norm1.num_groups == 8 and ResBlock(16, 32, 8).norm2.num_groups == 8
    assert ResBlock(6, 12, 8).norm1.num_groups == 2 and ResBlock(6, 12, 8).norm2.num_groups == 4
    model = UNet(base_channels=16, channel_mults=(1, 2), attention_levels=(1,), groups=4)
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_groups == 4 for m in norms), [m.num_groups for m in norms]
    # a width that 8 does not divide still builds (12 -> 4 groups, 6 -> 2) and runs
    odd = UNet(base_channels=6, channel_mults=(1, 2), attention_levels=(1,))
    assert odd(torch.randn(2, 1, 8, 8), torch.tensor([1, 2])).shape == (2, 1, 8, 8)


# ------------------------------------------------------------------ ResBlock
def _resblock_by_hand(block: ResBlock, x, temb):
    """The docstring: h = conv(SiLU(GN(x))) + Linear(SiLU(temb)); h = conv(SiLU(GN(h))) (eval, no dropout);
    skip(x) + h, the skip a 1x1 conv where the widths differ."""
    h = block.conv1(F.silu(block.norm1(x)))
    h = h + F.linear(F.silu(temb), block.temb_proj.weight, block.temb_proj.bias)[:, :, None, None]
    h = block.conv2(F.silu(block.norm2(h)))
    skip = x if isinstance(block.skip, nn.Identity) else block.skip(x)
    return skip + h


@pytest.mark.parametrize("in_ch,out_ch", [(16, 16), (8, 16)])
def test_resblock_follows_its_docstring(in_ch, out_ch):
    torch.manual_seed(1)
    block = ResBlock(in_ch, out_ch, 12, groups=4).eval()
    x, temb = torch.randn(3, in_ch, 5, 6), 3 * torch.randn(3, 12)
    assert isinstance(block.skip, nn.Identity) == (in_ch == out_ch)
    assert torch.allclose(block(x, temb), _resblock_by_hand(block, x, temb), atol=ATOL)


def test_resblock_dropout_acts_on_conv2s_input_at_its_rate():
    """Train mode: conv2 sees dropout(SiLU(GN(h))), so about p of its inputs are exact zeros and the rest are
    SiLU(GN(h)) / (1 - p); eval mode: no dropout, two calls agree."""
    torch.manual_seed(2)
    block = ResBlock(8, 8, 4, dropout=0.5, groups=4)
    seen = {}
    block.norm2.register_forward_hook(lambda m, i, o: seen.__setitem__("norm2", o))
    block.conv2.register_forward_pre_hook(lambda m, i: seen.__setitem__("conv2_in", i[0]))
    x, temb = torch.randn(4, 8, 8, 8), torch.randn(4, 4)
    block.train()(x, temb)
    kept = seen["conv2_in"] != 0
    share = 1 - kept.float().mean().item()
    assert 0.45 < share < 0.55, share
    assert torch.allclose(seen["conv2_in"][kept], 2 * F.silu(seen["norm2"])[kept], atol=1e-6)
    block.eval()
    assert torch.equal(block(x, temb), block(x, temb))


def test_unet_passes_its_dropout_to_every_resblock():
    model = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), dropout=0.3)
    rates = [m.dropout.p for m in model.modules() if isinstance(m, ResBlock)]
    assert rates and all(p == 0.3 for p in rates), rates
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 4])
    model.train()
    assert not torch.equal(model(x, t), model(x, t))
    model.eval()
    assert torch.equal(model(x, t), model(x, t))


# ------------------------------------------------------------------ AttentionBlock
def _attention_by_hand(block: AttentionBlock, x):
    """softmax over the keys of q k^T / sqrt(C), times v; q, k, v are the qkv conv's first, second, third C outputs."""
    B, C, H, W = x.shape
    n = block.norm(x).flatten(2)                                        # (B, C, N)
    qkv = torch.einsum("oc,bcn->bon", block.qkv.weight[:, :, 0, 0], n) + block.qkv.bias[None, :, None]
    q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
    weights = (torch.einsum("bci,bcj->bij", q, k) / math.sqrt(C)).softmax(dim=-1)   # (B, query, key)
    h = torch.einsum("bij,bcj->bci", weights, v)                        # (B, C, N)
    out = torch.einsum("oc,bcn->bon", block.proj.weight[:, :, 0, 0], h) + block.proj.bias[None, :, None]
    return x + out.reshape(B, C, H, W)


def test_attention_follows_softmax_qk_over_sqrt_c():
    torch.manual_seed(3)
    block = AttentionBlock(16, groups=4)
    with torch.no_grad():
        block.qkv.weight.mul_(3.0)                                      # peaked weights: the scale shows
    x = torch.randn(2, 16, 3, 5)
    assert torch.allclose(block(x), _attention_by_hand(block, x), atol=ATOL)


def test_attention_with_a_zero_projection_is_the_identity():
    block = AttentionBlock(8, groups=4)
    nn.init.zeros_(block.proj.weight)
    nn.init.zeros_(block.proj.bias)
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(block(x), x)


def test_attention_weights_sum_to_one_over_the_keys():
    """With v = a constant vector c at every position, each query's weighted mean of v is c, whatever q and k:
    the block returns x + proj(c). (Weights normalised over the queries instead would not sum to one per query.)"""
    torch.manual_seed(4)
    C = 8
    block = AttentionBlock(C, groups=4)
    with torch.no_grad():
        block.qkv.weight[2 * C:].zero_()
        block.qkv.weight[:2 * C].mul_(4.0)
        block.qkv.bias[2 * C:] = torch.arange(C, dtype=torch.float32)
    x = torch.randn(2, C, 3, 4)
    c = torch.arange(C, dtype=torch.float32)
    expected = x + (block.proj.weight[:, :, 0, 0] @ c + block.proj.bias)[None, :, None, None]
    assert torch.allclose(block(x), expected, atol=ATOL)


# ------------------------------------------------------------------ UNet wiring
def _trace(model: UNet, x, t, y=None):
    """Run the model with hooks on conv_in, every layer of the down, mid and up paths, norm_out and conv_out:
    the list of (name, module, inputs, output) in call order, and the output."""
    named = [("conv_in", model.conv_in)]
    named += [(f"down.{i}.{j}", layer) for i, stage in enumerate(model.down) for j, layer in enumerate(stage)]
    named += [(f"mid.{j}", layer) for j, layer in enumerate(model.mid)]
    named += [(f"up.{i}.{j}", layer) for i, stage in enumerate(model.up) for j, layer in enumerate(stage)]
    named += [("norm_out", model.norm_out), ("conv_out", model.conv_out)]
    calls, hooks = [], []
    for name, module in named:
        hooks.append(module.register_forward_hook(
            lambda mod, inp, out, name=name: calls.append((name, mod, inp, out))))
    try:
        out = model(x, t, y)
    finally:
        for hook in hooks:
            hook.remove()
    assert [c[0] for c in calls] == [n for n, _ in named], "each layer once, in order: down, mid, up"
    return calls, out


@pytest.mark.parametrize("size", [(12, 12), (11, 13)])
def test_unet_skips_are_the_down_paths_outputs_concatenated_after_h(size):
    """DDPM's wiring: a skip is stored after conv_in and after each down block (after its attention where there
    is one) and each downsample; every up ResBlock reads cat([h, skip], channels), the skips popped last first;
    an upsample goes to the next skip's size; conv_out reads SiLU(GroupNorm(h)); every ResBlock gets embed(t, y)."""
    torch.manual_seed(5)
    model = UNet(base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=2, attention_levels=(0, 2),
                 num_classes=3, groups=4).eval()
    x, t, y = torch.randn(2, 1, *size), torch.tensor([7, 300]), torch.tensor([2, -1])
    calls, out = _trace(model, x, t, y)
    temb = model.embed(t, y, 2)
    skips, prev = [], None
    for name, module, inp, result in calls:
        if name == "conv_in":
            assert torch.equal(inp[0], x)
        elif name == "norm_out":
            assert torch.equal(inp[0], prev)
        elif name == "conv_out":
            assert torch.equal(inp[0], F.silu(prev))
        elif name.startswith("up.") and isinstance(module, ResBlock):
            skip = skips.pop()
            assert torch.equal(inp[0], torch.cat([prev, skip], dim=1)), name
        elif isinstance(module, _Upsample):
            assert torch.equal(inp[0], prev) and tuple(result.shape[-2:]) == tuple(skips[-1].shape[-2:]), name
        else:
            assert torch.equal(inp[0], prev), name
        if isinstance(module, ResBlock):
            assert torch.allclose(inp[1], temb, atol=1e-6), name
        if name == "conv_in" or name.startswith("down."):
            if isinstance(module, AttentionBlock):
                skips[-1] = result
            else:
                skips.append(result)
        prev = result
    assert not skips and torch.equal(out, prev)


@pytest.mark.parametrize("size,mults", [((28, 28), (1, 2, 2, 2)), ((9, 13), (1, 2, 2)), ((28, 28), (1, 2, 2))])
def test_unet_levels_halve_rounding_up_and_come_back_to_the_input_size(size, mults):
    """Level i works at ceil(size / 2^i) (28 -> 14 -> 7 -> 4 and back 4 -> 7 -> 14 -> 28)."""
    model = UNet(base_channels=8, channel_mults=mults, attention_levels=(len(mults) - 1,), groups=4).eval()
    x = torch.randn(1, 1, *size)
    calls, out = _trace(model, x, torch.tensor([10]))
    assert out.shape == x.shape
    for name, module, _, result in calls:
        if name.startswith("down."):
            level = int(name.split(".")[1]) + (1 if isinstance(module, nn.Conv2d) else 0)
            expected = tuple(math.ceil(s / 2 ** level) for s in size)
            assert tuple(result.shape[-2:]) == expected, (name, tuple(result.shape), expected)


def test_unet_out_channels_and_attention_level_range():
    model = UNet(in_channels=1, out_channels=2, base_channels=8, channel_mults=(1, 2), attention_levels=())
    assert model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2])).shape == (2, 2, 8, 8)
    for bad in (2, -1):
        with pytest.raises(ValueError, match=rf"attention_levels \[{bad}\] out of range: levels are 0\.\.1"):
            UNet(channel_mults=(1, 2), attention_levels=(bad,))


def test_unet_rejects_a_timestep_tensor_that_is_not_one_per_image():
    model = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=())
    for t in (torch.tensor([[1, 2], [3, 4]]), torch.tensor([[1, 2, 3]])):
        with pytest.raises(ValueError, match=r"t must have shape \(2,\), one timestep per image"):
            model(torch.randn(2, 1, 8, 8), t)


# ------------------------------------------------------------------ class conditioning
def test_unet_class_embedding_rows_and_the_null_class():
    """embed = time embedding + class_embed row y; the null class (y None or -1) is the last row, num_classes;
    class 0 is row 0, not the null class; an unconditional UNet takes -1 labels as no labels."""
    torch.manual_seed(6)
    model = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=(), num_classes=4).eval()
    t = torch.tensor([0, 5, 9])
    time = model.time_embed(t)
    rows = model.class_embed.weight
    assert rows.shape[0] == 5
    assert torch.allclose(model.embed(t, None, 3), time + rows[4], atol=1e-6)
    assert torch.allclose(model.embed(t, torch.tensor([0, -1, 3]), 3), time + rows[[0, 4, 3]], atol=1e-6)
    x = torch.randn(3, 1, 8, 8)
    assert not torch.allclose(model(x, t, torch.tensor([0, 0, 0])), model(x, t), atol=1e-4)
    uncond = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=()).eval()
    assert torch.equal(uncond(x, t, torch.tensor([-1, -1, -1])), uncond(x, t))
    for y in ([0, 0, 0], [-1, 0, -1]):                                     # class 0 is a label like any other
        with pytest.raises(ValueError, match="unconditional .* but class labels y were given"):
            uncond(x, t, torch.tensor(y))


def test_null_class_row_learns_from_minus_one_labels_only():
    model = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=(), num_classes=3)
    model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([-1, -1])).pow(2).mean().backward()
    grad = model.class_embed.weight.grad
    assert grad[3].abs().sum() > 0 and grad[:3].abs().sum() == 0


# ------------------------------------------------------------------ _Upsample
def test_upsample_is_nearest_neighbour_then_its_convolution():
    torch.manual_seed(7)
    up = _Upsample(4)
    x = torch.randn(2, 4, 3, 4)
    near = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)                  # (2, 4, 6, 8)
    assert torch.allclose(up(x, (6, 8)), up.conv(near), atol=1e-6)
    assert not torch.allclose(up(x, (6, 8)), near, atol=1e-3)
    rows = torch.div(torch.arange(7) * 3, 7, rounding_mode="floor")                       # 3 -> 7: nearest
    assert torch.allclose(up(x, (7, 8)), up.conv(x[:, :, rows].repeat_interleave(2, dim=-1)), atol=1e-6)


# ------------------------------------------------------------------ MLPDenoiser
def test_mlp_denoiser_follows_its_docstring():
    """[x_t, emb(t) + class row (null = row num_classes)] -> (Linear, SiLU) x num_layers -> Linear."""
    torch.manual_seed(8)
    model = MLPDenoiser(data_dim=2, hidden_dim=16, time_embed_dim=8, num_layers=3, num_classes=4)
    types = [type(m) for m in model.net]
    assert types == [nn.Linear, nn.SiLU] * 3 + [nn.Linear], types
    x, t = torch.randn(5, 2), torch.tensor([0, 1, 50, 500, 999])
    y = torch.tensor([0, 3, -1, 2, -1])

    def by_hand(labels):
        h = torch.cat([x, model.time_embed(t) + model.class_embed.weight[labels]], dim=-1)
        for layer in list(model.net)[:-1:2]:
            h = F.silu(F.linear(h, layer.weight, layer.bias))
        return F.linear(h, model.net[-1].weight, model.net[-1].bias)

    assert torch.allclose(model(x, t, y), by_hand(torch.tensor([0, 3, 4, 2, 4])), atol=ATOL)
    assert torch.allclose(model(x, t), by_hand(torch.full((5,), 4)), atol=ATOL)
    assert not torch.allclose(model(x, t), model(x, t.flip(0)), atol=1e-4)                 # t matters
    assert not torch.allclose(model(x, t, torch.zeros(5, dtype=torch.long)), model(x, t), atol=1e-4)


def test_mlp_denoiser_parameter_count_and_time_scale():
    """(D + E) H + H, (L - 1) (H^2 + H), H D + D, the time MLP 2 (E^2 + E), the class rows (K + 1) E."""
    D, H, E, L, K = 3, 16, 8, 4, 5
    model = MLPDenoiser(data_dim=D, hidden_dim=H, time_embed_dim=E, num_layers=L, num_classes=K)
    expected = (D + E) * H + H + (L - 1) * (H * H + H) + H * D + D + 2 * (E * E + E) + (K + 1) * E
    assert count_parameters(model) == expected
    torch.manual_seed(9)
    scaled, plain = MLPDenoiser(hidden_dim=16, time_scale=1000.0), MLPDenoiser(hidden_dim=16)
    plain.load_state_dict(scaled.state_dict())
    x, t = torch.randn(4, 2), torch.tensor([0.0, 0.1, 0.5, 0.9])
    assert torch.allclose(scaled(x, t), plain(x, t * 1000), atol=ATOL)


# ------------------------------------------------------------------ NoisyClassifier
def _classifier_features_by_hand(clf: NoisyClassifier, x, t):
    h = F.silu(clf.norm1(clf.conv1(x)))
    h = clf.conv2(h)
    if clf.time_embed is not None:
        h = h + clf.time_embed(t)[:, :, None, None]
    h = F.silu(clf.norm2(h))
    h = F.silu(clf.norm3(clf.conv3(h)))
    pooled = torch.stack([torch.stack([h[:, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4].mean((-2, -1)) for j in range(4)], -1)
                          for i in range(4)], -2)                      # 16x16 -> 4x4 averages of 4x4 cells
    return F.silu(clf.fc(pooled.flatten(1)))


@pytest.mark.parametrize("time_conditioned", [True, False])
def test_noisy_classifier_follows_its_layers(time_conditioned):
    """conv, GN, SiLU; conv (stride 2) + time embedding per channel, GN, SiLU; conv (stride 2), GN, SiLU; average
    pool to 4x4; fc, SiLU = features; head = logits. A 64x64 input leaves a 16x16 grid: each cell averages 4x4."""
    torch.manual_seed(10)
    clf = NoisyClassifier(base_channels=8, feature_dim=24, time_conditioned=time_conditioned).eval()
    x, t = torch.randn(3, 1, 64, 64), torch.tensor([0, 400, 900])
    feats = clf.features(x, t)
    assert torch.allclose(feats, _classifier_features_by_hand(clf, x, t), atol=ATOL)
    assert torch.allclose(clf(x, t), clf.head(feats), atol=1e-6)
    if time_conditioned:
        assert not torch.allclose(clf(x, t), clf(x, t.flip(0)), atol=1e-4)
    else:
        assert clf.time_embed is None and torch.equal(clf(x, t), clf(x))


def test_gradient_reaches_every_parameter_of_the_mlp_and_the_classifier():
    mlp = MLPDenoiser(hidden_dim=8, num_classes=2)
    mlp(torch.randn(4, 2), torch.tensor([1, 2, 3, 4]), torch.tensor([0, 1, -1, 0])).pow(2).mean().backward()
    clf = NoisyClassifier(base_channels=8)
    clf(torch.randn(2, 1, 16, 16), torch.tensor([1, 500])).logsumexp(-1).sum().backward()
    for model in (mlp, clf):
        dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert not dead, dead


# ------------------------------------------------------------------ count_parameters
def test_count_parameters_counts_trainable_parameters_only():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))                # 16 + 10
    assert count_parameters(model) == 26
    model[0].weight.requires_grad_(False)
    assert count_parameters(model) == 14
    model.requires_grad_(False)
    assert count_parameters(model) == 0
