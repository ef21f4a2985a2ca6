"""MobileNet v1/v2 cost walks against the papers' published tables (pure Python, no JAX work).

Counting convention unless a test says otherwise (MISSION.md, the papers): params are conv
and FC weights plus the FC bias, no BatchNorm; mult-adds count every kernel tap, padded
ones included, and include the FC layer.
"""

import json
import math

import pytest

from sepconv import models
from sepconv.cli import main as cli

M = 1_000_000


def summary(name="mobilenet_v1", **kw):
  return models.model_summary(name, **kw)


def test_mobilenet_v1_224_exact():
  s = summary()
  assert s.params == 4_210_088
  assert s.mult_adds == 568_740_352
  # Keras MobileNet(alpha=1.0): BN scale/offset are trainable, BN statistics are not.
  assert s.params_with_bn == 4_231_976
  assert s.norm_stats == 21_888
  assert s.total_variables == 4_253_864


@pytest.mark.parametrize("alpha,mult_adds,params", [(0.75, 325, 2.6), (0.5, 149, 1.3), (0.25, 41, 0.5)])
def test_mobilenet_v1_width_multiplier_table6(alpha, mult_adds, params):
  s = summary(width_multiplier=alpha)
  assert round(s.mult_adds / M) == mult_adds
  assert round(s.params / M, 1) == params


@pytest.mark.parametrize("resolution,mult_adds", [(192, 418), (128, 186)])
def test_mobilenet_v1_resolution_table7(resolution, mult_adds):
  s = summary(input_size=resolution)
  assert round(s.mult_adds / M) == mult_adds
  assert s.params == 4_210_088


def test_mobilenet_v1_resolution_160_table7():
  # The exact count is 290.68M, which rounds to 291 (as the TF-slim reference table prints
  # for MobileNet_v1_1.0_160), while Table 7 prints 290: the paper's own rho^2 scaling of
  # the 224 count gives it, and gives the other two rows too.
  exact = summary(input_size=160).mult_adds
  assert exact == 290_675_200 and round(exact / M) == 291
  assert abs(exact / M - 290) < 1
  full = summary().mult_adds
  assert [round(full * (r / 224) ** 2 / M) for r in (192, 160, 128)] == [418, 290, 186]


def test_standard_conv_mobilenet_table4():
  # "Conv MobileNet": each depthwise + pointwise pair is one dense 3x3 conv.
  layers = models.model_cost("mobilenet_v1", conv="standard")
  s = models.model_summary("mobilenet_v1", conv="standard")
  assert round(s.params / M, 1) == 29.3
  conv_only = sum(l.mult_adds for l in layers if l.kind == "conv")
  # Padded taps: 4866.27M over the conv layers alone (the paper's 4866), 4867.29M once the
  # 1.02M of the FC layer are added (4867); valid taps only would give 4491M / 4492M.
  assert round(conv_only / M) == 4866
  assert round(s.mult_adds / M) == 4867
  assert abs(s.mult_adds - 4866 * M) / (4866 * M) < 1e-3
  assert round(s.mult_adds_valid / M) == 4492


def test_shallow_mobilenet_table5():
  s = summary("mobilenet_v1_shallow")
  assert round(s.mult_adds / M) == 307
  assert round(s.params / M, 1) == 2.9
  assert len(models.model_architecture("mobilenet_v1_shallow").units) == 1 + 8


def test_resource_per_layer_type_table2():
  groups = {"Conv 1x1": [0, 0], "Conv DW 3x3": [0, 0], "Conv 3x3": [0, 0], "Fully Connected": [0, 0]}
  for l in models.model_cost("mobilenet_v1"):
    if l.kind == "norm":
      continue
    key = ("Fully Connected" if l.kind == "dense" else "Conv 3x3" if l.name.startswith("stem")
           else "Conv 1x1" if l.name.endswith("pointwise") else "Conv DW 3x3")
    groups[key][0] += l.mult_adds
    groups[key][1] += l.weights  # Table 2's parameter shares leave out the FC bias
  total_ma = sum(g[0] for g in groups.values())
  total_p = sum(g[1] for g in groups.values())
  share = {k: (round(100 * ma / total_ma, 2), round(100 * p / total_p, 2)) for k, (ma, p) in groups.items()}
  # Table 2 prints 1.19% for the 3x3 stem conv's mult-adds: its column then sums to 99.29%;
  # 1.91% (digits swapped) makes it 100.01%.
  assert share == {"Conv 1x1": (94.86, 74.59), "Conv DW 3x3": (3.06, 1.06),
                   "Conv 3x3": (1.91, 0.02), "Fully Connected": (0.18, 24.33)}


def test_mobilenet_v2_224_headline():
  s = summary("mobilenet_v2")
  assert s.params == 3_470_760
  assert s.mult_adds == 300_774_272
  # The v2 paper truncates: 3.47M prints as 3.4M and 300.77M as 300M (rounding would give
  # 3.5M and 301M); every row of the reference table below is truncated the same way.
  assert math.floor(s.params / M * 10) / 10 == 3.4
  assert math.floor(s.mult_adds / M) == 300
  # Keras MobileNetV2(alpha=1.0): 3,504,872 trainable + 34,112 non-trainable.
  assert s.params_with_bn == 3_504_872
  assert s.norm_stats == 34_112


# TF-slim research/slim/nets/mobilenet/README.md (also in Keras mobilenet_v2.py's docstring):
# (alpha, resolution) -> (million MACs, million parameters).
V2_REFERENCE = {
    (1.4, 224): (582, 6.06), (1.3, 224): (509, 5.34), (1.0, 224): (300, 3.47),
    (1.0, 192): (221, 3.47), (1.0, 160): (154, 3.47), (1.0, 128): (99, 3.47), (1.0, 96): (56, 3.47),
    (0.75, 224): (209, 2.61), (0.75, 192): (153, 2.61), (0.75, 160): (107, 2.61),
    (0.75, 128): (69, 2.61), (0.75, 96): (39, 2.61),
    (0.5, 224): (97, 1.95), (0.5, 192): (71, 1.95), (0.5, 160): (50, 1.95), (0.5, 128): (32, 1.95),
    (0.5, 96): (18, 1.95),
    (0.35, 224): (59, 1.66), (0.35, 192): (43, 1.66), (0.35, 160): (30, 1.66),
    (0.35, 128): (20, 1.66), (0.35, 96): (11, 1.66),
}


def test_mobilenet_v2_reference_table_all_22_rows():
  for (alpha, resolution), (macs, params) in V2_REFERENCE.items():
    s = summary("mobilenet_v2", width_multiplier=alpha, input_size=resolution)
    assert math.floor(s.mult_adds / M) == macs, (alpha, resolution)
    assert round(s.params / M, 2) == params, (alpha, resolution)


def test_mobilenet_v2_channel_rounding():
  mk = models.mobilenet_v2.make_divisible
  assert [mk(c * 0.35) for c in (32, 16, 24, 32, 64, 96, 160, 320)] == [16, 8, 8, 16, 24, 32, 56, 112]
  assert mk(1280 * 1.4) == 1792
  arch = models.model_architecture("mobilenet_v2", width_multiplier=0.5)
  assert arch.features == 1280  # the last conv is not thinned below width 1
  assert models.model_architecture("mobilenet_v2", width_multiplier=1.4).features == 1792


def test_layer_names_are_flax_paths():
  v1 = [l.name for l in models.model_cost("mobilenet_v1")]
  assert v1[:6] == ["stem/spatial", "stem/norm", "block1/spatial", "block1/mid_norm",
                    "block1/pointwise", "block1/norm"]
  assert "block13/pointwise" in v1 and v1[-1] == "classifier"
  v2 = [l.name for l in models.model_cost("mobilenet_v2")]
  assert v2[2:8] == ["block1/conv/spatial", "block1/conv/mid_norm", "block1/conv/pointwise",
                     "block1/conv/norm", "block2/expand/spatial", "block2/expand/norm"]
  assert v2[-3:] == ["head/spatial", "head/norm", "classifier"]


def test_last_depthwise_is_stride_one_and_small_input_strides():
  arch = models.model_architecture("mobilenet_v1")
  assert [u.spec.stride[0] for u in arch.units] == [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
  last = models.model_cost("mobilenet_v1")[-2]
  assert last.out_shape == (7, 7, 1024)
  for name, size, final in [("mobilenet_v1", 32, 4), ("mobilenet_v1", 8, 1), ("mobilenet_v2", 32, 4)]:
    layers = models.model_cost(name, input_size=size, width_multiplier=0.25)
    assert layers[-2].out_shape[:2] == (final, final)
  small = models.model_architecture("mobilenet_v1", input_size=32)
  assert [u.spec.stride[0] for u in small.units][:4] == [1, 1, 1, 1]
  assert models.model_architecture("mobilenet_v1", input_size=32, small_input=False) == (
      models.model_architecture("mobilenet_v1", input_size=224))


def test_group_size_rule():
  # g >= the stage's input channels is dense; the stem is always a standard conv.
  capped = models.model_architecture("mobilenet_v1", conv="grouped:g=100000", width_multiplier=0.25)
  dense = models.model_architecture("mobilenet_v1", conv="standard", width_multiplier=0.25)
  assert capped == dense
  g8 = models.model_architecture("mobilenet_v1", conv="grouped:g=8", width_multiplier=0.25)
  assert [u.spec.group_size for u in g8.units] == [3] + [8] * 13
  # a shuffle over one pointwise group is the identity: a capped ShuffleNet layer is BSConv-U
  assert (models.model_architecture("mobilenet_v1", conv="shufflenet:pg=100000")
          == models.model_architecture("mobilenet_v1", conv="bsconv"))
  with pytest.raises(ValueError, match=r"block1 \(8->16 channels.*'grouped:g=3'.*divisible by group_size"):
    models.model_architecture("mobilenet_v1", conv="grouped:g=3", width_multiplier=0.25)
  # v2's projection narrows hidden -> out, so few group counts divide both; the error says which fit
  with pytest.raises(ValueError, match=r"block2 \(96->24 channels.*g that fit here: 4, 8, 12, 16, 24"):
    models.model_architecture("mobilenet_v2", conv="grouped:g=2")


@pytest.mark.parametrize("kwargs,message", [
    (dict(name="resnet50"), r"model name \(='resnet50'\) must be one of \('mobilenet_v1'"),
    (dict(width_multiplier=0), r"width_multiplier \(=0\) must be a positive number"),
    (dict(width_multiplier=0.001), r"leaves no channels"),
    (dict(input_size=0), r"input_size \(=0\) must be a positive int"),
    (dict(num_classes=0), r"num_classes \(=0\) must be a positive int"),
    (dict(conv="depthwise"), r"spectrum point name \(='depthwise'\)"),
    (dict(conv="dws:q=1"), r"'q=1' is not KEY=VALUE"),
    (dict(small_input="yes"), r"small_input \(='yes'\)"),
])
def test_bad_values_raise(kwargs, message):
  name = kwargs.pop("name", "mobilenet_v1")
  with pytest.raises(ValueError, match=message):
    models.model_cost(name, **kwargs)


def test_cli_cost_model_json(capsys):
  assert cli.main(["cost", "model", "mobilenet_v1", "--json"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert out["params"] == 4_210_088 and out["mult_adds"] == 568_740_352
  assert out["params_with_bn"] == 4_231_976 and out["conv"] == "dws"
  assert cli.main(["cost", "model", "mobilenet_v2", "--alpha", "0.5", "--resolution", "32",
                   "--conv", "dws:g=8", "--num-classes", "10", "--json", "--layers"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert out["small_input"] is True and out["num_classes"] == 10
  assert out["params"] == sum(l["weights"] + l["biases"] for l in out["layers"])
  assert cli.main(["cost", "model", "mobilenet_v1", "--alpha", "0.25", "--layers"]) == 0
  text = capsys.readouterr().out
  assert "block13/pointwise" in text and "464,600" in text


@pytest.mark.parametrize("argv,message", [
    (["mobilenet_v3"], "model name (='mobilenet_v3') must be one of"),
    (["mobilenet_v1", "--conv", "grouped:g=3", "--alpha", "0.25"], "block1 (8->16 channels"),
    (["mobilenet_v1", "--resolution", "0"], "input_size (=0)"),
])
def test_cli_cost_model_bad_value(argv, message, capsys):
  assert cli.main(["cost", "model", *argv]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and message in err and err.startswith("sepconv cost: error:")
