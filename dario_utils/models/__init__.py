"""The super-resolution network, its checkpoint formats, the student and the frozen teachers."""
from dario_utils.models.checkpoints import (
    SCHEMES, SR_NAMES, CheckpointError, CheckpointReadError, Snapshot, SRCheckpoint, detect_scheme, from_basicsr,
    infer_config, load_sr, read_sr_checkpoint, rng_state, save_sr_checkpoint, set_rng_state, to_basicsr,
)
from dario_utils.models.ncnn import convert_realesrgan_x4plus
from dario_utils.models.rrdbnet import RRDBNet
from dario_utils.models.student import build_student, student_architecture
from dario_utils.models.teachers import load_teacher, Teacher, teacher_of, TEACHERS, TeacherWeightsError

__all__ = [
    "SCHEMES", "SR_NAMES", "TEACHERS", "CheckpointError", "CheckpointReadError", "RRDBNet", "SRCheckpoint",
    "Snapshot", "Teacher", "TeacherWeightsError", "build_student", "load_teacher", "teacher_of",
    "convert_realesrgan_x4plus", "detect_scheme", "from_basicsr", "infer_config",
    "load_sr", "read_sr_checkpoint", "rng_state", "save_sr_checkpoint", "set_rng_state", "student_architecture",
    "to_basicsr",
]
