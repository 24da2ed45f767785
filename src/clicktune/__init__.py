"""clicktune: turn search clickstream into better embedding models.

What a fine-tuning method plugin needs is importable from here (docs/plugins.md):

    from clicktune import DefaultFineTuningMethod, EmbeddingMethodConfig, MethodMeta
"""

from clicktune.errors import InvalidHyperparameter, TaskCanceled, TaskFailed
from clicktune.methods.default import DefaultFineTuningMethod
from clicktune.methods.embedding import EmbeddingFineTuningMethod
from clicktune.training.examples import Positive, SessionLabels
from clicktune.training.search_space import CategoricalParam, FloatParam, IntParam, ParamSpec
from clicktune.tuning.config import EmbeddingMethodConfig
from clicktune.tuning.plugin import FineTuningMethod, MethodMeta, TaskContext, TaskResult, TaskSpec

__version__ = "0.1.0"

__all__ = [
    "CategoricalParam",
    "DefaultFineTuningMethod",
    "EmbeddingFineTuningMethod",
    "EmbeddingMethodConfig",
    "FineTuningMethod",
    "FloatParam",
    "IntParam",
    "InvalidHyperparameter",
    "MethodMeta",
    "ParamSpec",
    "Positive",
    "SessionLabels",
    "TaskCanceled",
    "TaskContext",
    "TaskFailed",
    "TaskResult",
    "TaskSpec",
    "__version__",
]
