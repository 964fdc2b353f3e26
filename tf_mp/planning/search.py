"""The search over layouts: a Keras Tuner oracle over the mesh shape, one
choice per group role and FSDP, each trial scored by the cost model.

Roles that hold under `MINOR_SHARE` of the model's bytes stay replicated
(small weights are not worth a collective). Spaces up to `GRID_LIMIT`
candidates are searched whole (`GridSearchOracle`); larger ones by
`RandomSearchOracle` for `GRID_LIMIT` trials (Keras Tuner's Bayesian oracle
fits a Gaussian process per trial: minutes for a thousand). A candidate that
does not fit its mesh or the memory budget scores `PENALTY` plus its
per-device GiB.
"""

import math
import shutil
import tempfile

import keras_tuner

from tf_mp.planning import costs
from tf_mp.planning.groups import REPLICATED

GRID_LIMIT = 1024
MINOR_SHARE = 0.01
PENALTY = 1e6
OBJECTIVES = ("step_time", "memory")


def roles(groups):
    """`{role: options}` of the roles with a choice, in model order: those
    with more than one option and at least `MINOR_SHARE` of the bytes."""
    total = sum(w.bytes for g in groups for w in g.weights)
    share = {}
    for group in groups:
        share[group.role] = share.get(group.role, 0) + sum(
            w.bytes for w in group.weights
        )
    found = {}
    for group in groups:
        if len(group.options) > 1 and share[group.role] >= MINOR_SHARE * total:
            found.setdefault(group.role, tuple(group.options))
    return found


def score(figures, objective):
    if objective == "memory":
        return figures.bytes_per_device / 2**30
    return figures.step_s


class _CostTuner(keras_tuner.Tuner):
    """Scores each trial with the cost model; keeps every candidate that fits."""

    def __init__(self, evaluate, objective, **kwargs):
        self._evaluate = evaluate
        self._objective = objective
        self.fitting = []
        super().__init__(**kwargs)

    def run_trial(self, trial, *args, **kwargs):
        try:
            figures, fits = self._evaluate(trial.hyperparameters.values)
        except Exception as error:  # A bug, not a bad candidate: stop.
            raise keras_tuner.errors.FatalError(repr(error)) from error
        if figures is None:
            return {"cost": PENALTY * 2}
        if not fits:
            return {"cost": PENALTY + figures.bytes_per_device / 2**30}
        self.fitting.append(figures)
        return {"cost": score(figures, self._objective)}

    def on_epoch_end(self, *args, **kwargs):  # No models, no epochs.
        pass


def search(groups, meshes, workload, constants, budget, objective, seed=0):
    """Every fitting candidate the oracle tried, best first, one per layout."""
    space = roles(groups)
    names = {f"group_{i}": role for i, role in enumerate(space)}
    hp = keras_tuner.HyperParameters()
    hp.Choice("mesh", [f"{b}x{m}" for b, m in meshes])
    for name, role in names.items():
        hp.Choice(name, list(space[role]))
    can_fsdp = any(b > 1 for b, _ in meshes)
    if can_fsdp:
        hp.Boolean("fsdp")
    size = len(meshes) * math.prod(len(o) for o in space.values()) * (1 + can_fsdp)

    def evaluate(values):
        mesh = tuple(int(n) for n in values["mesh"].split("x"))
        choices = {role: values[name] for name, role in names.items()}
        figures = costs.evaluate(
            groups, mesh, choices, values.get("fsdp", False), workload, constants
        )
        fits = figures is not None and (
            budget is None or figures.bytes_per_device <= budget
        )
        return figures, fits

    objective_ = keras_tuner.Objective("cost", "min")
    if size <= GRID_LIMIT:
        oracle = keras_tuner.oracles.GridSearchOracle(
            objective=objective_, max_trials=size, hyperparameters=hp, seed=seed
        )
    else:
        oracle = keras_tuner.oracles.RandomSearchOracle(
            objective=objective_, max_trials=GRID_LIMIT, hyperparameters=hp, seed=seed
        )
    directory = tempfile.mkdtemp(prefix="tf_mp_plan_")
    try:
        tuner = _CostTuner(
            evaluate, objective, oracle=oracle, directory=directory, project_name="plan"
        )
        tuner.search(verbose=0)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return rank(tuner.fitting, objective)


def rank(candidates, objective):
    """Best first; of candidates with the same mesh and layout, the first."""
    seen, ranked = set(), []
    for figures in sorted(candidates, key=lambda f: score(f, objective)):
        key = (figures.mesh, tuple(map(tuple, figures.axes)))
        if key not in seen:
            seen.add(key)
            ranked.append(figures)
    return ranked


def smallest_footprint(groups, meshes, workload, constants):
    """The candidate with the fewest bytes per device over `meshes`: per mesh,
    each role's leanest option, with FSDP."""
    space = roles(groups)
    best = None
    for mesh in meshes:
        choices = {}
        for role, options in space.items():
            members = [g for g in groups if g.role == role]
            leanest = None
            for option in options:
                figures = costs.evaluate(
                    members, mesh, {role: option}, True, workload, constants
                )
                if figures is not None and (
                    leanest is None or figures.bytes_per_device < leanest[1]
                ):
                    leanest = (option, figures.bytes_per_device)
            choices[role] = leanest[0] if leanest else REPLICATED
        figures = costs.evaluate(groups, mesh, choices, True, workload, constants)
        if figures is not None and (
            best is None or figures.bytes_per_device < best.bytes_per_device
        ):
            best = figures
    return best
