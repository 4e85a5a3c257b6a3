from edge.classes import ACTION_CLASSES, MERL_CLASS_NAMES, Action


def test_class_k_is_merl_class_k_and_zero_is_no_action():
    assert ACTION_CLASSES[Action.NO_ACTION] == "no_action" and len(ACTION_CLASSES) == 6
    for k, merl_name in enumerate(MERL_CLASS_NAMES, start=1):
        assert ACTION_CLASSES[k] == merl_name.lower().replace(" ", "_")
