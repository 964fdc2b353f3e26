"""Knowledge distillation: `Distiller`, its loss terms, teacher caching, student
construction, transfer sets and augmentation."""

from tf_mp.distillation.augment import augment
from tf_mp.distillation.distiller import Distiller
from tf_mp.distillation.distiller import save_student
from tf_mp.distillation.features import encoder_blocks
from tf_mp.distillation.features import feature_model
from tf_mp.distillation.students import bert_config
from tf_mp.distillation.students import encoder_config
from tf_mp.distillation.students import encoder_parameters
from tf_mp.distillation.students import student_from_config
from tf_mp.distillation.students import student_from_teacher
from tf_mp.distillation.teacher_cache import TeacherCache
from tf_mp.distillation.terms import AttentionDistillation
from tf_mp.distillation.terms import HiddenStateDistillation
from tf_mp.distillation.terms import uniform_layer_map
from tf_mp.distillation.transfer import transfer_set
