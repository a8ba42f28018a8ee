"""Tests for adgm_tf.export: the SavedModel contract TF Serving relies on."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from adgm_tf import evaluation
from adgm_tf import export
from adgm_tf import rundir

from conftest import REPO, run_env

# Runs in a fresh interpreter: plain TensorFlow, no adgm_tf, no TFP.
PLAIN_TF_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

path, images_npy, out_npz = sys.argv[1:4]
loaded = tf.saved_model.load(path)
serve = loaded.signatures["serving_default"]
generate = loaded.signatures["generate"]
x = np.load(images_npy)
out = serve(images=tf.constant(x))
again = serve(images=tf.constant(x))
gen = generate(labels=tf.constant([0, 1, 2, 9], tf.int32))

sm = saved_model_pb2.SavedModel()
sm.ParseFromString(open(path + "/saved_model.pb", "rb").read())
ops = set()
for mg in sm.meta_graphs:
  ops |= {n.op for n in mg.graph_def.node}
  for f in mg.graph_def.library.function:
    ops |= {n.op for n in f.node_def}
unregistered = sorted(op for op in ops if op_def_registry.get(op) is None)
np.savez(out_npz, probabilities=out["probabilities"].numpy(),
         classes=out["classes"].numpy(), again=again["probabilities"].numpy(),
         generated=gen["images"].numpy())
print(json.dumps(dict(
    unregistered=unregistered, num_ops=len(ops),
    imported=[m for m in ("adgm_tf", "tensorflow_probability") if m in sys.modules],
    outputs={k: [v.dtype.name, v.shape.as_list()] for k, v in serve.structured_outputs.items()},
    inputs={k: [v.dtype.name, v.shape.rank]
            for k, v in serve.structured_input_signature[1].items()})))
"""


@pytest.fixture(scope="module")
def exported(tiny_run):
  return os.path.join(tiny_run["export_dir"], "1")


@pytest.fixture(scope="module")
def plain_tf_run(exported, mnist_arrays, tmp_path_factory):
  tmp = tmp_path_factory.mktemp("plain")
  x = evaluation.as_grey(mnist_arrays.test_images[:64])
  np.save(tmp / "x.npy", x)
  out = subprocess.run(
      [sys.executable, "-c", PLAIN_TF_SCRIPT, exported, str(tmp / "x.npy"),
       str(tmp / "out.npz")], capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 0, out.stderr[-3000:]
  return x, json.loads(out.stdout.strip().splitlines()[-1]), dict(np.load(tmp / "out.npz"))


def test_loads_and_runs_with_plain_tensorflow(plain_tf_run):
  _, info, _ = plain_tf_run
  assert info["imported"] == []
  # Unknown rank in the signature: the shape is checked in the graph (see
  # test_a_tf_serving_session_gets_the_shape_message).
  assert info["inputs"] == {"images": ["float32", None]}
  assert info["outputs"] == {"probabilities": ["float32", [None, 10]],
                             "classes": ["int32", [None]]}


def test_every_op_is_registered_in_stock_tensorflow(plain_tf_run):
  _, info, _ = plain_tf_run
  assert info["num_ops"] > 20
  assert info["unregistered"] == []


def test_export_round_trip_equals_the_in_memory_classifier(plain_tf_run, tiny_run):
  x, _, out = plain_tf_run
  _, model, _ = rundir.load_run(tiny_run["model_dir"])
  want = tf.exp(model.predict_log_proba(x, model.eval_samples)).numpy()
  np.testing.assert_allclose(out["probabilities"], want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(out["classes"], np.argmax(want, axis=1))
  np.testing.assert_array_equal(out["again"], out["probabilities"])  # deterministic
  np.testing.assert_allclose(out["probabilities"].sum(1), 1.0, rtol=1e-5)
  gen = out["generated"]
  assert gen.shape == (4, 784) and gen.min() >= 0 and gen.max() <= 1
  np.testing.assert_allclose(gen, model.generate(tf.constant([0, 1, 2, 9])).numpy(),
                             rtol=1e-5, atol=1e-6)


def test_saved_model_cli_lists_both_predict_signatures(exported):
  cli = shutil.which("saved_model_cli") or os.path.join(os.path.dirname(sys.executable),
                                                        "saved_model_cli")
  out = subprocess.run([cli, "show", "--dir", exported, "--all"], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 0, out.stderr[-2000:]
  text = out.stdout
  for sig in ("serving_default", "generate"):
    block = text.split(f"signature_def['{sig}']:")[1].split("signature_def[")[0]
    assert "Method name is: tensorflow/serving/predict" in block, block
  serving = text.split("signature_def['serving_default']:")[1].split("signature_def[")[0]
  # The shape is checked in the graph (TF Serving does not check requests).
  assert "inputs['images'] tensor_info:\n        dtype: DT_FLOAT\n        shape: unknown_rank" in serving
  assert "outputs['classes'] tensor_info:\n        dtype: DT_INT32" in serving
  generate = text.split("signature_def['generate']:")[1].split("signature_def[")[0]
  assert "inputs['labels'] tensor_info:\n        dtype: DT_INT32" in generate


def test_predict_request_maps_onto_the_signature(exported, mnist_arrays):
  """What tensorflow_model_server does with a gRPC PredictRequest, step by step."""
  from tensorflow_serving.apis import predict_pb2
  request = predict_pb2.PredictRequest()
  request.model_spec.name = "adgm"
  request.model_spec.signature_name = "serving_default"
  x = evaluation.as_grey(mnist_arrays.test_images[:3])
  request.inputs["images"].CopyFrom(tf.make_tensor_proto(x, dtype=tf.float32))
  request = predict_pb2.PredictRequest.FromString(request.SerializeToString())

  loaded = tf.saved_model.load(exported)
  signature = loaded.signatures[request.model_spec.signature_name]
  expected_inputs = signature.structured_input_signature[1]
  assert set(request.inputs) == set(expected_inputs)
  feeds = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
  for k, t in feeds.items():
    assert expected_inputs[k].is_compatible_with(t)
  outputs = signature(**feeds)
  response = predict_pb2.PredictResponse()
  response.model_spec.CopyFrom(request.model_spec)
  for k, v in outputs.items():
    response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
  response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
  assert set(response.outputs) == {"probabilities", "classes"}
  assert response.outputs["probabilities"].dtype == tf.float32.as_datatype_enum
  assert response.outputs["classes"].dtype == tf.int32.as_datatype_enum
  assert tf.make_ndarray(response.outputs["probabilities"]).shape == (3, 10)
  assert tf.make_ndarray(response.outputs["classes"]).shape == (3,)


def test_bad_serving_inputs_get_clear_errors(exported):
  loaded = tf.saved_model.load(exported)
  serve = loaded.signatures["serving_default"]
  for shape in ([2, 28, 28], [784], [3, 10]):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"images must be a float32 tensor of shape \[batch, 784\]"):
      serve(images=tf.zeros(shape))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be in \[0, 1\]"):
    serve(images=tf.fill([2, 784], 255.0))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be in \[0, 10\)"):
    loaded.signatures["generate"](labels=tf.constant([3, 10]))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be an int32 vector"):
    loaded.signatures["generate"](labels=tf.constant([[3]]))


def test_a_tf_serving_session_gets_the_shape_message(exported):
  """TF Serving runs the graph in a Session without checking shapes (its
  maintainers, tensorflow/serving#1436): the same path in Python."""
  tf1 = tf.compat.v1
  graph = tf.Graph()
  with graph.as_default(), tf1.Session(graph=graph) as sess:
    meta = tf1.saved_model.loader.load(sess, ["serve"], exported)
    sig = meta.signature_def["serving_default"]
    fetch, feed = sig.outputs["probabilities"].name, sig.inputs["images"].name
    assert sess.run(fetch, {feed: np.zeros((2, 784), np.float32)}).shape == (2, 10)
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
      sess.run(fetch, {feed: np.zeros((1, 28, 28), np.float32)})
  assert "images must be a float32 tensor of shape [batch, 784]" in e.value.message
  assert "got shape] [1 28 28]" in e.value.message


def test_versions_are_never_overwritten(tiny_run, tmp_path):
  base = str(tmp_path / "exports")
  _, model, _ = rundir.load_run(tiny_run["model_dir"])
  first = export.export_saved_model(model, base)
  second = export.export_saved_model(model, base)
  assert first.endswith("/1") and second.endswith("/2")
  stamp = os.path.getmtime(os.path.join(first, "saved_model.pb"))
  with pytest.raises(FileExistsError, match="never overwritten"):
    export.export_saved_model(model, base, version=1)
  assert os.path.getmtime(os.path.join(first, "saved_model.pb")) == stamp
  assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary left behind


def test_export_command_line_from_a_checkpoint(tiny_run, mnist_idx_dir, tmp_path):
  base = str(tmp_path / "exports")
  out = subprocess.run(
      [sys.executable, "-m", "adgm_tf.export", f"--model_dir={tiny_run['model_dir']}",
       f"--export_dir={base}"], cwd=REPO, env=run_env(mnist_idx_dir),
      capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = (out.stdout + out.stderr).strip().splitlines()
  assert len(lines) <= 4, lines  # no TensorFlow start-up noise
  assert lines[0].endswith(f"to {os.path.join(base, '1')}")
  meta = json.load(open(os.path.join(base, "1", "assets.extra", "adgm_tf.json")))
  assert meta["checkpoint"].endswith("ckpt-20") and meta["eval_samples"] == 20


@pytest.mark.skipif(shutil.which("tensorflow_model_server") is None,
                    reason="tensorflow_model_server is not on PATH (no package "
                           "registry here carries it); the contract tests above "
                           "stand in for it")
def test_real_tensorflow_model_server(exported, tmp_path, mnist_arrays):
  import socket
  import time
  import urllib.request
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  base = tmp_path / "models"
  shutil.copytree(os.path.dirname(exported), base / "adgm")
  server = subprocess.Popen(
      ["tensorflow_model_server", f"--rest_api_port={port}", "--port=0",
       "--model_name=adgm", f"--model_base_path={base / 'adgm'}"])
  try:
    x = evaluation.as_grey(mnist_arrays.test_images[:2]).tolist()
    body = json.dumps({"instances": x}).encode()
    for _ in range(60):
      try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/adgm:predict",
                                     data=body)
        reply = json.loads(urllib.request.urlopen(req, timeout=5).read())
        break
      except OSError:
        time.sleep(1)
    else:
      pytest.fail("tensorflow_model_server did not answer")
    assert len(reply["predictions"]) == 2
    assert len(reply["predictions"][0]["probabilities"]) == 10
  finally:
    server.terminate()
    server.wait(timeout=30)



def test_export_of_best_needs_a_validation_split(tiny_run, tmp_path):
  """(The export of a real best checkpoint: tests/test_train.py, which trains one.)"""
  from adgm_tf.errors import CheckpointError
  with pytest.raises(CheckpointError, match="--validation_size"):
    export.export_from_checkpoint(tiny_run["model_dir"], str(tmp_path / "none"),
                                  checkpoint="best")
  assert not (tmp_path / "none").exists() or os.listdir(tmp_path / "none") == []
