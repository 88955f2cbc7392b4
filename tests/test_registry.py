import pytest

from reidbox.registry import BACKBONES, DATASETS, LOSSES, META_ARCHS, Registry


def test_register_and_get_case_insensitive():
    r = Registry("thing")

    @r.register("Foo")
    class Foo:
        pass

    @r.register()
    def bar():
        return 1

    assert r.get("foo") is Foo and r.get("FOO") is Foo
    assert r.get("bar") is bar
    assert "foo" in r and r.names() == ["bar", "foo"]


def test_unknown_name_lists_available():
    r = Registry("widget")
    r.register("alpha")(object)
    with pytest.raises(KeyError) as e:
        r.get("beta")
    assert "unknown widget 'beta'" in e.value.args[0] and "alpha" in e.value.args[0]


def test_duplicate_registration_refused():
    r = Registry("thing")
    r.register("a")(int)
    with pytest.raises(KeyError, match="already registered"):
        r.register("a")(float)


def test_builtins_are_registered():
    import reidbox.data  # noqa: F401
    import reidbox.modeling  # noqa: F401

    assert {"resnet18", "resnet50", "densenet121", "densenet161"} <= set(BACKBONES.names())
    assert {"cross_entropy", "triplet"} <= set(LOSSES.names())
    assert "baseline" in META_ARCHS
    assert "market1501" in DATASETS
