"""Automatic model-parallel layouts for any Keras model (`tf_mp.plan`).

* `structure.py`: the model's weights in the groups a layout splits together
  (attention heads, feed-forward pairs, embeddings, other weights), read from
  its layers and shapes; `groups.py`: those groups as data.
* `costs.py`: one candidate's per-device bytes, collectives and step time.
* `constants.py`: the cost model's machine constants, measured once.
* `search.py`: a Keras Tuner oracle over mesh shapes and per-group choices.
* `measure.py`: the final candidates' step times, measured.
* `planner.py`: `plan(...)`; `arguments.py`: its arguments, checked.
* `plan.py`: the `Plan` (JSON, scope, apply); `placement.py`: a plan put to
  use; `summary.py`: its table.
"""

from tf_mp.planning.plan import Plan
from tf_mp.planning.planner import plan
