import argparse

from audiofcn.train import add_budget_arguments, apply_budget_arguments


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_budget_arguments(parser)
    return parser.parse_args(list(argv))


def test_overrides_replace_the_config_values_and_leave_the_input_alone():
    train = {"epochs": 12, "lr": 1e-3}
    out = apply_budget_arguments(train, _parse("--epochs", "3", "--time-budget", "90"))
    assert out == {"epochs": 3, "lr": 1e-3, "time_budget_s": 90.0}
    assert train == {"epochs": 12, "lr": 1e-3}


def test_no_flags_no_change():
    train = {"epochs": 12, "time_budget_s": 420}
    assert apply_budget_arguments(train, _parse()) == train
