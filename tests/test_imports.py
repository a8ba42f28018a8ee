"""The package's import structure, read from the source (nothing is run).

* No circle: the module-level imports between adgm_tf's modules form no
  cycle, so a function-local import is never needed to break one.
* Every function-local import of a package module defers something heavy:
  its target imports TensorFlow, Keras, TFP, tfds, matplotlib or absl at
  module level (itself or through the modules it imports), so that a bad flag
  or a missing file fails before TensorFlow loads. A local import of a light
  module (one that exists only to dodge a cycle, or for no reason) fails here.
* The light modules stay light: importing them imports none of those.
"""

import ast
import os

import pytest

from conftest import REPO

HEAVY = ("tensorflow", "keras", "tensorflow_probability", "tensorflow_datasets",
         "matplotlib", "absl", "tensorboard")
PACKAGE = os.path.join(REPO, "adgm_tf")
# Modules whose docstrings promise an import without TensorFlow (flags and
# files are checked before it loads): they must stay light.
LIGHT = ("adgm_tf.cli", "adgm_tf.errors", "adgm_tf.config", "adgm_tf.rules",
         "adgm_tf.variants", "adgm_tf.hardware", "adgm_tf.evaluate", "adgm_tf.export",
         "adgm_tf.experiments", "adgm_tf.rundir", "adgm_tf.data", "adgm_tf.builders",
         "adgm_tf.devices", "adgm_tf.pipeline", "adgm_tf.train", "adgm_tf.bench",
         "adgm_tf.op_table")


def _modules():
  found = {}
  for root, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        found[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
  return found


MODULES = _modules()


def _targets(node, module):
  """The module names an import statement imports."""
  if isinstance(node, ast.Import):
    return [a.name for a in node.names]
  if node.level:  # relative
    base = module.rsplit(".", node.level)[0]
    prefix = f"{base}.{node.module}" if node.module else base
  else:
    prefix = node.module
  names = [f"{prefix}.{a.name}" for a in node.names]
  return [n if n in MODULES else prefix for n in names]


def _imports(module):
  """(module-level imports, function-local imports) of ``module``."""
  tree = ast.parse(open(MODULES[module]).read())
  top, local = set(), set()
  for node in tree.body:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      top.update(_targets(node, module))
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      for inner in ast.walk(node):
        if isinstance(inner, (ast.Import, ast.ImportFrom)):
          local.update(_targets(inner, module))
  return top, local


IMPORTS = {m: _imports(m) for m in MODULES}


def _heavy(module, seen=()):
  if module not in MODULES:
    return module.split(".")[0] in HEAVY
  if module in seen:
    return False
  return any(_heavy(t, seen + (module,)) for t in IMPORTS[module][0])


def test_no_circle_among_module_level_imports():
  def visit(module, path):
    if module in path:
      raise AssertionError(" -> ".join(path[path.index(module):] + (module,)))
    for t in IMPORTS[module][0]:
      if t in MODULES and t != module:
        visit(t, path + (module,))
  for m in MODULES:
    visit(m, ())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_local_import_of_a_package_module_defers_something_heavy(module):
  light = sorted(t for t in IMPORTS[module][1] if t in MODULES and not _heavy(t))
  assert not light, (f"{module} imports {light} inside functions, but they are light: "
                     f"import them at the top")


@pytest.mark.parametrize("module", LIGHT)
def test_light_modules_import_nothing_heavy(module):
  assert not _heavy(module), f"{module} imports TensorFlow (or another heavy library)"
