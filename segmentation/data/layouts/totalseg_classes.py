"""TotalSegmentator's class names (v1: 104, v2: 117) and the named groups of them `classes` may give.

The lists are the official ones, in the official label order: `class_map["total_v1"]` and
`class_map["total"]` of TotalSegmentator's `totalsegmentator/map_to_binary.py`. Each name is
also the file name of a mask: `<case>/segmentations/<name>.nii.gz`.
"""

from __future__ import annotations

CLASSES_V1: tuple[str, ...] = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "aorta",
    "inferior_vena_cava", "portal_vein_and_splenic_vein", "pancreas", "adrenal_gland_right",
    "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
    "lung_middle_lobe_right", "lung_lower_lobe_right",
    "vertebrae_L5", "vertebrae_L4", "vertebrae_L3", "vertebrae_L2", "vertebrae_L1",
    "vertebrae_T12", "vertebrae_T11", "vertebrae_T10", "vertebrae_T9", "vertebrae_T8", "vertebrae_T7",
    "vertebrae_T6", "vertebrae_T5", "vertebrae_T4", "vertebrae_T3", "vertebrae_T2", "vertebrae_T1",
    "vertebrae_C7", "vertebrae_C6", "vertebrae_C5", "vertebrae_C4", "vertebrae_C3", "vertebrae_C2",
    "vertebrae_C1",
    "esophagus", "trachea", "heart_myocardium", "heart_atrium_left", "heart_ventricle_left",
    "heart_atrium_right", "heart_ventricle_right", "pulmonary_artery", "brain",
    "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right",
    "small_bowel", "duodenum", "colon",
    *(f"rib_left_{n}" for n in range(1, 13)),
    *(f"rib_right_{n}" for n in range(1, 13)),
    "humerus_left", "humerus_right", "scapula_left", "scapula_right", "clavicula_left", "clavicula_right",
    "femur_left", "femur_right", "hip_left", "hip_right", "sacrum", "face",
    "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right",
    "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left", "autochthon_right",
    "iliopsoas_left", "iliopsoas_right", "urinary_bladder",
)

CLASSES_V2: tuple[str, ...] = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
    "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left",
    "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus", "trachea",
    "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate",
    "kidney_cyst_left", "kidney_cyst_right", "sacrum",
    "vertebrae_S1", "vertebrae_L5", "vertebrae_L4", "vertebrae_L3", "vertebrae_L2", "vertebrae_L1",
    "vertebrae_T12", "vertebrae_T11", "vertebrae_T10", "vertebrae_T9", "vertebrae_T8", "vertebrae_T7",
    "vertebrae_T6", "vertebrae_T5", "vertebrae_T4", "vertebrae_T3", "vertebrae_T2", "vertebrae_T1",
    "vertebrae_C7", "vertebrae_C6", "vertebrae_C5", "vertebrae_C4", "vertebrae_C3", "vertebrae_C2",
    "vertebrae_C1",
    "heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery_right",
    "subclavian_artery_left", "common_carotid_artery_right", "common_carotid_artery_left",
    "brachiocephalic_vein_left", "brachiocephalic_vein_right", "atrial_appendage_left",
    "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein",
    "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right",
    "humerus_left", "humerus_right", "scapula_left", "scapula_right", "clavicula_left", "clavicula_right",
    "femur_left", "femur_right", "hip_left", "hip_right", "spinal_cord",
    "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right",
    "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left", "autochthon_right",
    "iliopsoas_left", "iliopsoas_right", "brain", "skull",
    *(f"rib_left_{n}" for n in range(1, 13)),
    *(f"rib_right_{n}" for n in range(1, 13)),
    "sternum", "costal_cartilages",
)

CLASSES: dict[str, tuple[str, ...]] = {"v1": CLASSES_V1, "v2": CLASSES_V2}

# A group lists names of either version; a dataset uses those its version has, in the group's order.
GROUPS: dict[str, tuple[str, ...]] = {
    # v2's "organs" part (TotalSegmentator's 5-part model); v1 lacks the thyroid, prostate and kidney cysts
    "organs": CLASSES_V2[:24],
    "vertebrae": tuple(name for name in CLASSES_V2 if name.startswith("vertebrae_")),
    "ribs": tuple(name for name in CLASSES_V2 if name.startswith("rib_")),
    # the heart (v2: one class, v1: its four chambers and myocardium) and the great vessels at it
    "cardiac": (
        "heart", "heart_myocardium", "heart_atrium_left", "heart_ventricle_left", "heart_atrium_right",
        "heart_ventricle_right", "atrial_appendage_left", "aorta", "pulmonary_artery", "pulmonary_vein",
        "superior_vena_cava", "inferior_vena_cava",
    ),
    "muscles": tuple(name for name in CLASSES_V2 if name.startswith(("gluteus_", "autochthon_", "iliopsoas_"))),
}


def group_classes(group: str, version: str) -> list[str]:
    """The classes of `group` that TotalSegmentator `version` has (`all`: every class), in the group's order."""
    available = CLASSES[version]
    if group == "all":
        return list(available)
    return [name for name in GROUPS[group] if name in available]
