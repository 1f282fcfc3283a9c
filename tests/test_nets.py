"""Noise predictors: shapes at every resolution the course uses, conditioning, gradient flow, parameter counts."""
from __future__ import annotations

import pytest
import torch

from course_utils.nets import (MLPDenoiser, NoisyClassifier, SinusoidalTimeEmbedding, UNet, count_parameters,
                              sinusoidal_embedding)

# (image size, channel_mults, attention_levels): 28 -> 14 -> 7 (MNIST), 32 -> 16 -> 8 -> 4, 16 -> 8 -> 4, 8 -> 4
CASES = [(28, (1, 2, 2), (2,)), (32, (1, 2, 2, 2), (2,)), (16, (1, 2, 2), (2,)), (8, (1, 2), (1,))]


@pytest.mark.parametrize("size,mults,attn", CASES)
def test_unet_output_shape(size, mults, attn):
    model = UNet(in_channels=1, base_channels=16, channel_mults=mults, attention_levels=attn)
    x, t = torch.randn(2, 1, size, size), torch.tensor([0, 999])
    out = model(x, t)
    assert out.shape == x.shape and out.dtype == torch.float32
    print(f"UNet {size}x{size} mults {mults}: {count_parameters(model):,} parameters")


def test_unet_rgb_and_odd_size():
    model = UNet(in_channels=3, base_channels=16, channel_mults=(1, 2), attention_levels=())
    x = torch.randn(2, 3, 10, 10)
    assert model(x, torch.tensor([1, 2])).shape == x.shape


def test_unet_conditional_null_class():
    torch.manual_seed(0)
    model = UNet(base_channels=16, channel_mults=(1, 2), attention_levels=(1,), num_classes=10).eval()
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([5, 50, 500])
    out_none = model(x, t, None)
    out_null = model(x, t, torch.tensor([-1, -1, -1]))
    assert torch.equal(out_none, out_null)
    out_cls = model(x, t, torch.tensor([0, 3, 9]))
    assert not torch.allclose(out_cls, out_none)
    mixed = model(x, t, torch.tensor([0, -1, 9]))                    # per-example: -1 rows are unconditional
    assert torch.allclose(mixed[1], out_none[1], atol=1e-6) and torch.allclose(mixed[0], out_cls[0], atol=1e-6)
    with pytest.raises(ValueError, match=r"class labels must lie in 0\.\.9 \(or -1 for none\)"):
        model(x, t, torch.tensor([0, 10, 1]))
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        model(x, t, torch.tensor([0, 1]))


def test_unet_gradient_flows_to_every_parameter():
    model = UNet(base_channels=16, channel_mults=(1, 2), attention_levels=(1,), num_classes=3)
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([3, 700]), torch.tensor([0, 2])
    model(x, t, y).pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    # the null-class row of the embedding gets no gradient when no -1 labels are present; everything else must
    missing = [n for n in missing if n != "class_embed.weight"]
    assert not missing, missing
    zero = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() == 0]
    assert not zero, f"parameters with an all-zero gradient: {zero}"


def test_unet_bad_input_messages():
    model = UNet(base_channels=16, channel_mults=(1, 2), attention_levels=())
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 1, H, W\), got \(2, 3, 8, 8\)"):
        model(torch.randn(2, 3, 8, 8), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"t must have shape \(2,\), one timestep per image, got \(3,\)"):
        model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="unconditional .* but class labels y were given"):
        model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"attention_levels \[3\] out of range: levels are 0\.\.1"):
        UNet(channel_mults=(1, 2), attention_levels=(3,))


def test_mlp_denoiser_shapes_and_conditioning():
    model = MLPDenoiser(data_dim=2, hidden_dim=32, num_classes=4)
    x, t = torch.randn(5, 2), torch.randint(0, 1000, (5,))
    assert model(x, t).shape == (5, 2)
    assert torch.equal(model(x, t), model(x, t, torch.full((5,), -1)))
    assert model(x, t, torch.tensor([0, 1, 2, 3, -1])).shape == (5, 2)
    assert MLPDenoiser(data_dim=3)(torch.randn(4, 3), torch.zeros(4, dtype=torch.long)).shape == (4, 3)
    with pytest.raises(ValueError, match=r"expected points of shape \(B, 2\), got \(5, 3\)"):
        model(torch.randn(5, 3), t)
    with pytest.raises(ValueError, match=r"t must have shape \(5,\)"):
        model(x, t[:3])
    print(f"MLPDenoiser(hidden 32): {count_parameters(model):,} parameters")


def test_noisy_classifier_and_embedding():
    clf = NoisyClassifier(base_channels=16)
    x = torch.randn(3, 1, 16, 16)
    assert clf(x, torch.tensor([1, 2, 3])).shape == (3, 10)
    with pytest.raises(ValueError, match="conditioned on the timestep"):
        clf(x)
    assert NoisyClassifier(base_channels=16, time_conditioned=False)(x).shape == (3, 10)
    emb = sinusoidal_embedding(torch.tensor([0, 1, 500]), 33)
    assert emb.shape == (3, 33)
    assert torch.equal(emb[0, :16], torch.zeros(16)) and torch.equal(emb[0, 16:32], torch.ones(16))  # sin 0, cos 0


def test_time_scale_multiplies_the_timestep_first():
    """The lab's networks take continuous times in [0, 1] with time_scale = 1000: with the same weights, the
    embedding of t = 0.5 at time_scale 1000 is the embedding of t = 500 at time_scale 1, and so is a UNet's output."""
    torch.manual_seed(0)
    scaled, plain = SinusoidalTimeEmbedding(32, 64, time_scale=1000.0), SinusoidalTimeEmbedding(32, 64)
    plain.load_state_dict(scaled.state_dict())
    times = torch.tensor([0.0, 0.25, 0.5, 0.999])
    assert torch.allclose(scaled(times), plain(times * 1000), atol=1e-5)
    assert not torch.allclose(scaled(times), plain(times), atol=1e-3)
    net_scaled, net_plain = UNet(base_channels=16, time_scale=1000.0), UNet(base_channels=16)
    net_plain.load_state_dict(net_scaled.state_dict())
    x = torch.randn(4, 1, 16, 16)
    assert torch.allclose(net_scaled(x, times), net_plain(x, times * 1000), atol=1e-5)


def _unet_parameters_by_hand(base: int = 32, temb: int = 128) -> int:
    """The default UNet's parameter count derived from its layout (DDPM Appendix B as nets.py builds it).

    Layers: conv(i, o, k) has i*o*k*k + o, linear(i, o) i*o + o, GroupNorm(c) 2c; a ResBlock(i -> o) is GN(i),
    conv 3x3, the time projection, GN(o), conv 3x3 and a 1x1 skip when i != o; attention(c) is GN(c), a 1x1
    qkv (c -> 3c) and a 1x1 projection.
    """
    def conv(i, o, k):
        return i * o * k * k + o

    def res(i, o):
        return 2 * i + conv(i, o, 3) + (temb * o + o) + 2 * o + conv(o, o, 3) + (conv(i, o, 1) if i != o else 0)

    def attn(c):
        return 2 * c + conv(c, 3 * c, 1) + conv(c, c, 1)

    c1, c2 = base, 2 * base                                           # channel_mults (1, 2, 2)
    time = (base * temb + temb) + (temb * temb + temb)               # sinusoidal(base) -> MLP -> temb
    down = conv(1, c1, 3) + res(c1, c1) + conv(c1, c1, 3) + res(c1, c2) + conv(c2, c2, 3) + res(c2, c2) + attn(c2)
    mid = res(c2, c2) + attn(c2) + res(c2, c2)
    # skips, popped last first: conv_in c1, level 0 (res c1, down c1), level 1 (res c2, down c2), level 2 (res c2)
    up = (res(c2 + c2, c2) + attn(c2) + res(c2 + c2, c2) + attn(c2) + conv(c2, c2, 3)   # level 2 (8x8) + upsample
          + res(c2 + c2, c2) + res(c2 + c1, c2) + conv(c2, c2, 3)                     # level 1 + upsample
          + res(c2 + c1, c1) + res(c1 + c1, c1))                                      # level 0
    return time + down + mid + up + 2 * c1 + conv(c1, 1, 3)          # norm_out, conv_out


def test_parameter_count_follows_from_the_layout():
    """The default course UNet (base 32, channel_mults (1, 2, 2), attention at level 2) has 1,112,801 parameters:
    the count derived layer by layer above, and the number docs/performance.md and README.md quote (diffusers'
    UNet2DModel of the same layout has as many: tests/test_reference_diffusers.py). Any change of layout shows."""
    n = count_parameters(UNet(base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,)))
    print(f"UNet base 32, mults (1, 2, 2): {n:,} parameters")
    assert n == _unet_parameters_by_hand() == 1_112_801, (n, _unet_parameters_by_hand())


# ------------------------------------------------------------------ a student's wrong calls (the error audit)
def _tiny_unet(**kwargs) -> UNet:
    return UNet(base_channels=8, channel_mults=(1, 2), attention_levels=(), **kwargs).eval()


def test_one_t_for_the_whole_batch_is_told_to_use_torch_full():
    """unet(x, 500) and unet(x, torch.tensor(500)), the most natural first call, said "'int' object has no
    attribute 'shape'" and "tuple index out of range"; the MLP said the same. The message gives the (B,) call."""
    x, points = torch.randn(4, 1, 8, 8), torch.randn(8, 2)
    full = r"use torch\.full\(\(xt\.shape\[0\],\), 500\)"
    with pytest.raises(TypeError, match=r"^UNet\(xt, t\): t must be a tensor of shape \(4,\), one timestep per image, "
                                        r"got int 500; for one t for the whole batch " + full):
        _tiny_unet()(x, 500)
    with pytest.raises(ValueError, match=r"UNet\(xt, t\): t must be a tensor of shape \(4,\), .*got a 0-dim tensor "
                                         r"\(500\); .*" + full):
        _tiny_unet()(x, torch.tensor(500))
    mlp = MLPDenoiser(hidden_dim=8)
    with pytest.raises(TypeError, match=r"MLPDenoiser\(xt, t\): t must be a tensor of shape \(8,\), one timestep per "
                                        r"point, got int 500; .*" + full):
        mlp(points, 500)
    with pytest.raises(ValueError, match=r"MLPDenoiser\(xt, t\): .*got a 0-dim tensor"):
        mlp(points, torch.tensor(500))
    with pytest.raises(TypeError, match=r"got list \(are the arguments in this order\?\)"):
        mlp(points, [500] * 8)
    # the right call, and the lab's (B, 1, 1, 1) continuous times, still work
    assert _tiny_unet()(x, torch.full((4,), 500)).shape == x.shape
    lab = _tiny_unet(time_scale=1000.0)
    assert torch.allclose(lab(x, torch.full((4, 1, 1, 1), 0.5)), lab(x, torch.full((4,), 0.5)))


def test_float64_input_is_refused_with_xt_float():
    """torch.from_numpy gives float64: the MLP raised torch's "mat1 and mat2 must have the same dtype" from 8 torch
    frames down, the UNet a conv error. Now a TypeError naming xt.float(); nothing is cast silently."""
    t4, t8 = torch.full((4,), 10), torch.full((8,), 10)
    with pytest.raises(TypeError, match=r"^UNet\(xt, t\): xt is float64 but the model's weights are float32 .*"
                                        r"pass xt\.float\(\)"):
        _tiny_unet()(torch.randn(4, 1, 8, 8, dtype=torch.float64), t4)
    with pytest.raises(TypeError, match=r"^MLPDenoiser\(xt, t\): xt is float64 .*torch\.from_numpy gives float64\): "
                                        r"pass xt\.float\(\)"):
        MLPDenoiser(hidden_dim=8)(torch.randn(8, 2, dtype=torch.float64), t8)


def test_mlp_denoiser_refuses_labels_as_the_unet_does():
    """An unconditional MLPDenoiser (num_classes forgotten) ignored y silently (lesson 6: every guidance scale gave
    the same samples); with num_classes=8, y = 8 was read as the null class and y = 9 gave torch's 'index out of
    range in self'. Now as UNet.embed: the null class is -1 (or None), labels run 0..K-1."""
    points, t = torch.randn(4, 2), torch.full((4,), 10)
    with pytest.raises(ValueError, match=r"MLPDenoiser\(xt, t, y\): this MLPDenoiser is unconditional "
                                         r"\(num_classes=None\) but class labels y were given: build it with "
                                         r"MLPDenoiser\(\.\.\., num_classes=K\)"):
        MLPDenoiser(hidden_dim=8)(points, t, torch.tensor([0, 1, 2, 3]))
    plain = MLPDenoiser(hidden_dim=8)
    assert torch.equal(plain(points, t, torch.full((4,), -1)), plain(points, t))    # all null: as UNet accepts
    conditional = MLPDenoiser(hidden_dim=8, num_classes=8)
    for labels, got in (([1, 2, 8, 3], r"got 1\.\.8"), ([0, 9, 1, 1], r"got 0\.\.9"), ([-2, 0, 1, 1], r"got -2\.\.1")):
        with pytest.raises(ValueError, match=r"class labels must lie in 0\.\.7 \(or -1 for none\), " + got):
            conditional(points, t, torch.tensor(labels))
    with pytest.raises(ValueError, match=r"y must have shape \(4,\), got \(4, 1\)"):
        conditional(points, t, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(TypeError, match=r"y must be a tensor of shape \(4,\), one class label per example, got int"):
        conditional(points, t, 3)
    with pytest.raises(TypeError, match=r"got list; torch\.tensor\(y\) makes one$"):      # not torch.full (a review)
        conditional(points, t, [0, 1, 2, 3])
    assert torch.equal(conditional(points, t, torch.full((4,), -1)), conditional(points, t))
    # the unconditional UNet keeps its message, now with the fix
    with pytest.raises(ValueError, match=r"this UNet is unconditional .* build it with UNet\(\.\.\., num_classes=K\)"):
        _tiny_unet()(torch.randn(4, 1, 8, 8), t, torch.tensor([0, 1, 2, 3]))


def test_times_in_0_1_given_to_a_model_of_integer_timesteps_are_refused():
    """The lab's continuous times t ~ U[0, 1] (or a lesson's t / T) given to a model built without time_scale: its
    sinusoidal embedding saw every t as about 0, so training ran without an error and the model could not tell noise
    levels apart. Now a ValueError naming int64 timesteps and time_scale=1000.0. Whole-number floats still pass."""
    x, points = torch.randn(4, 1, 8, 8), torch.randn(8, 2)
    fix = (r"t holds fractions in \[0, 1\], times t/T, but this model takes integer timesteps 0\.\.T-1 "
           r"\(time_scale=1\.0\): pass int64 timesteps, or build the model with time_scale=1000\.0")
    with pytest.raises(ValueError, match=r"^UNet\(xt, t\): " + fix + r".*; got t = 0\.1, 0\.5, 0\.9, 0$"):
        _tiny_unet()(x, torch.tensor([0.1, 0.5, 0.9, 0.0]))
    with pytest.raises(ValueError, match=r"^UNet\(xt, t, y\): " + fix):
        _tiny_unet(num_classes=3)(x, torch.full((4,), 0.25), torch.tensor([0, 1, 2, -1]))
    with pytest.raises(ValueError, match=r"^MLPDenoiser\(xt, t\): " + fix + r".*t = 0\.5, 0\.5, 0\.5, 0\.5, \.\.\.$"):
        MLPDenoiser(hidden_dim=8)(points, torch.full((8,), 0.5))
    # not fractions in [0, 1]: whole numbers as floats, a float t past 1, int64; and any t with time_scale
    net = _tiny_unet()
    assert torch.equal(net(x, torch.tensor([0.0, 1.0, 0.0, 1.0])), net(x, torch.tensor([0, 1, 0, 1])))
    assert torch.equal(net(x, torch.tensor([500.0, 3.0, 0.0, 999.0])), net(x, torch.tensor([500, 3, 0, 999])))
    assert net(x, torch.tensor([0.5, 1.5, 2.5, 3.5])).shape == x.shape
    assert _tiny_unet(time_scale=1000.0)(x, torch.rand(4)).shape == x.shape
    assert MLPDenoiser(hidden_dim=8, time_scale=1000.0)(points, torch.rand(8)).shape == points.shape


def test_a_pretrained_unet_refuses_images_of_another_size():
    """digits-unet-cond was trained at 16x16: given 28x28 noise (MNIST's size, as in every other lesson) it sampled
    shapes of nothing in particular without a word. load() keeps the card's image_shape on the model, which refuses
    another (C, H, W) and says how to run it there on purpose; a UNet built here takes any size."""
    from course_utils.checkpoints import load
    from course_utils.samplers import ddim_sample
    model, schedule, card = load("digits-unet-cond")
    assert model.image_shape == tuple(card["image_shape"]) == (1, 16, 16)
    with pytest.raises(ValueError, match=r"^UNet\(xt, t, y\): this pretrained model was trained on images of shape "
                                         r"\(1, 16, 16\), got \(1, 28, 28\): sample with shape \(B, "
                                         r"\*card\['image_shape'\]\) = \(B, 1, 16, 16\), or set "
                                         r"model\.image_shape = None to run it at another size on purpose$"):
        ddim_sample(model, schedule, (2, 1, 28, 28), num_steps=2, y=torch.tensor([3, 4]), progress=False)
    assert ddim_sample(model, schedule, (2, 1, 16, 16), num_steps=2, progress=False).shape == (2, 1, 16, 16)
    model.image_shape = None
    assert ddim_sample(model, schedule, (2, 1, 28, 28), num_steps=2, progress=False).shape == (2, 1, 28, 28)
    assert _tiny_unet().image_shape is None and _tiny_unet()(torch.randn(1, 1, 12, 12), torch.zeros(1)).shape[-1] == 12


def test_the_checks_meant_for_a_gpu_test_the_same_values(monkeypatch):
    """Off the CPU (or compiled) the label and time checks run as torch._assert_async, which never waits for the GPU;
    no GPU here, so the CPU runs that branch (torch raises its message as a RuntimeError): same verdicts as the
    Python branch, for wrong values and right ones."""
    from course_utils import model_inputs
    monkeypatch.setattr(model_inputs, "_on_host", lambda x: False)
    x, conditional = torch.randn(4, 1, 8, 8), _tiny_unet(num_classes=3)
    with pytest.raises(RuntimeError, match=r"^UNet\(xt, t, y\): class labels must lie in 0\.\.2 \(or -1 for none\)$"):
        conditional(x, torch.full((4,), 10), torch.tensor([0, 1, 3, -1]))
    with pytest.raises(RuntimeError, match=r"^UNet\(xt, t\): t holds fractions in \[0, 1\], times t/T"):
        _tiny_unet()(x, torch.full((4,), 0.5))
    assert conditional(x, torch.full((4,), 10), torch.tensor([0, 1, 2, -1])).shape == x.shape
    assert _tiny_unet()(x, torch.tensor([0.0, 1.0, 2.5, 999.0])).shape == x.shape
