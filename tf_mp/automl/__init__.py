"""AutoML: Keras Tuner searches for the best distilled student under a budget."""

from tf_mp.automl.hypermodel import StudentHyperModel
from tf_mp.automl.pareto import pareto_front
from tf_mp.automl.result import SearchResult
from tf_mp.automl.search import search_student
from tf_mp.automl.search_data import TransferChoices
from tf_mp.automl.settings import Budget
from tf_mp.automl.settings import TransferData
from tf_mp.automl.space import StudentSpace
from tf_mp.automl.tuners import BayesianOptimization
from tf_mp.automl.tuners import DistinctBayesianOptimizationOracle
from tf_mp.automl.tuners import Hyperband
from tf_mp.automl.tuners import RandomSearch
from tf_mp.utils.latency import measure_latency
