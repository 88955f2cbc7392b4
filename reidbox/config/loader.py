"""Load yml configs layered with a list-valued ``_BASE_``, then command-line ``opts``."""

from __future__ import annotations

import importlib
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import yaml
from yacs.config import CfgNode

from ..errors import UnknownNameError, UserError
from .aliases import all_keys, suggest
from .defaults import get_cfg_defaults

PathLike = Union[str, os.PathLike]


class ConfigError(UserError, ValueError):
    """A config file or override is wrong; the message names the key and where it came from."""


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # reidbox/


def packaged_config_dir() -> str:
    """The shipped configs: ``reidbox/configs`` in an installed wheel, else the repository's
    ``configs/`` beside the package (a clone or an editable install)."""
    installed = os.path.join(_PACKAGE, "configs")
    return (
        installed
        if os.path.isdir(installed)
        else os.path.join(os.path.dirname(_PACKAGE), "configs")
    )


def _shipped(path: str) -> Optional[str]:
    """The shipped config named ``path`` (``configs/`` prefix optional), if there is one."""
    if os.path.isabs(path):
        return None
    name = os.path.normpath(path).replace(os.sep, "/")
    name = name[len("configs/") :] if name.startswith("configs/") else name
    found = os.path.join(packaged_config_dir(), name)
    return found if os.path.isfile(found) else None


def shipped_config(name: str) -> str:
    """A shipped config by its name inside ``configs/`` (``_base_/market1501.yml``)."""
    found = _shipped(name)
    if found is None:
        raise ConfigError(
            f"shipped config {name} is missing from {packaged_config_dir()}; "
            "reinstall reidbox (pip install .) or restore it from the repository"
        )
    return found


def shipped_names() -> List[str]:
    """Every shipped config as ``configs/<folder>/<name>.yml`` (bases included), sorted."""
    root = packaged_config_dir()
    out = []
    for base, _, files in os.walk(root):
        rel = os.path.relpath(base, root)
        out += [
            "configs/" + os.path.normpath(os.path.join(rel, f)).replace(os.sep, "/")
            for f in files
            if f.endswith((".yml", ".yaml"))
        ]
    return sorted(out)


def _closest_configs(path: str) -> List[str]:
    """Shipped config names close to ``path``: by the whole name, else by its file name."""
    import difflib

    names = shipped_names()
    name = os.path.normpath(path).replace(os.sep, "/")
    name = name if name.startswith("configs/") else "configs/" + name.lstrip("./")
    scored = sorted(
        ((difflib.SequenceMatcher(None, name, n).ratio(), n) for n in names), reverse=True
    )
    # the near-best only: a shared "configs/<folder>/" makes every sibling look alike
    close = [n for r, n in scored if r >= 0.75 and r >= scored[0][0] - 0.05] if scored else []
    if not close:
        leaf = os.path.basename(name)
        by_leaf: Dict[str, List[str]] = {}
        for n in names:
            by_leaf.setdefault(os.path.basename(n), []).append(n)
        for m in difflib.get_close_matches(leaf, list(by_leaf), n=2, cutoff=0.8):
            close += by_leaf[m]
    return close[:3]


def find_config(path: PathLike) -> str:
    """A config file: ``path`` if it exists, else the shipped config of that name
    (``configs/market1501/mgn_ptl.yml`` or ``market1501/mgn_ptl.yml``, from any directory).
    Not found: the error names the closest shipped configs."""
    path = os.fspath(path)
    found = path if os.path.isfile(path) else _shipped(path)
    if found is None and os.path.isdir(path):
        inside = sorted(f for f in os.listdir(path) if f.endswith((".yml", ".yaml")))[:3]
        raise ConfigError(
            f"config file {path} is a folder; give a .yml file"
            + (f", e.g. {os.path.join(path, inside[0])}" if inside else "")
        )
    if found is None:
        close = [] if os.path.isabs(path) else _closest_configs(path)
        hint = (
            f"did you mean {' or '.join(close)}?"
            if close
            else "give an existing yml file or a shipped name such as "
            "configs/market1501/mgn_ptl.yml"
        )
        raise ConfigError(
            f"config file not found: {path} (looked in {os.getcwd()} and in the "
            f"shipped configs {packaged_config_dir()}); {hint}"
        )
    return found


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loading (a config never executes code) that refuses a key given twice in one
    mapping: YAML would keep the last value silently."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(
                    f"{self.name}: key {key} is given twice (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); YAML would keep the last silently: "
                    "keep one of them"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: str) -> dict:
    with open(path, encoding="utf-8-sig") as f:
        try:
            data = yaml.load(f, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        raise ConfigError(
            f"config file {path} is empty: it would train on the built-in defaults "
            "(ResNet-50, 50 epochs); give a config with keys, or a shipped one such as "
            "configs/demo/ptl.yml"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of config keys")
    return data


def _ints_to_floats(data: dict, node: CfgNode) -> dict:
    """``1`` where the default is a float means ``1.0`` (yacs alone would call it a type error)."""
    out = {}
    for k, v in data.items():
        ref = node.get(k) if isinstance(node, CfgNode) else None
        if isinstance(v, dict) and isinstance(ref, CfgNode):
            v = _ints_to_floats(v, ref)
        elif isinstance(ref, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        out[k] = v
    return out


def unknown_key_message(cfg: CfgNode, key: str) -> Optional[str]:
    """Why ``key`` (dotted) cannot be set in ``cfg``, with a "did you mean"; None if it can."""
    node: object = cfg
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            return f"Non-existent config key: {key}{suggest(key, all_keys(cfg))}"
        node = node[part]
    if isinstance(node, CfgNode):
        return (
            f"{key} is a group of keys, not a value; set one of "
            f"{', '.join(all_keys(node, key + '.'))}"
        )
    return None


def _check_keys(cfg: CfgNode, data: dict, prefix: str = "") -> None:
    for k, v in data.items():
        full = f"{prefix}{k}"
        ref = cfg.get(k) if isinstance(cfg, CfgNode) else None
        if ref is None and (not isinstance(cfg, CfgNode) or k not in cfg):
            raise UnknownNameError(unknown_key_message(get_cfg_defaults(), full) or full)
        if isinstance(v, dict) and isinstance(ref, CfgNode):
            _check_keys(ref, v, full + ".")


def _merge_file(cfg: CfgNode, path: str, chain: List[str]) -> None:
    path = os.path.abspath(path)
    if path in chain:
        raise ConfigError(f"{path}: _BASE_ cycle: {' -> '.join(chain + [path])}")
    data = _read_yaml(path)
    bases = data.pop("_BASE_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list):
        raise ConfigError(f"{path}: _BASE_ must be a file name or a list of them")
    for base in bases:
        base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):  # a user's file may name a shipped base
            base_path = _find_base(base, base_path, path)
        _merge_file(cfg, base_path, chain + [path])
    try:
        _check_keys(cfg, data)
        cfg.merge_from_other_cfg(CfgNode(_ints_to_floats(data, cfg)))
        resolve_arch_alias(cfg)
    except (KeyError, ValueError, AssertionError) as e:
        msg = e.args[0] if e.args else str(e)
        raise ConfigError(f"{path}: {msg}") from None


# Meta-architecture names that are a plain model with PTL's side network switched on: the name
# is read as (meta-architecture, the keys it sets). Resolved after each yml file and after the
# command line, so a later ``MODEL.PTL.ENABLED False`` builds the plain twin.
ARCH_ALIASES = {
    "ptl": ("baseline", {"HEADS.NAME": "paper", "PTL.ENABLED": True}),
    "mgn_ptl": ("mgn", {"PTL.ENABLED": True}),
    "ptl_classifier": ("paper_classifier", {"PTL.ENABLED": True}),
}


def resolve_arch_alias(cfg: CfgNode) -> None:
    """Replace an alias in ``MODEL.META_ARCHITECTURE`` by what it names (:data:`ARCH_ALIASES`)."""
    alias = ARCH_ALIASES.get(cfg.MODEL.META_ARCHITECTURE)
    if alias is None:
        return
    arch, keys = alias
    cfg.MODEL.META_ARCHITECTURE = arch
    for key, value in keys.items():
        node = cfg.MODEL
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value


def _find_base(base: str, beside: str, including: str) -> str:
    shipped = _shipped(base)
    if shipped is None:
        raise ConfigError(
            f"{including}: _BASE_ file {base} not found (looked for {beside} "
            f"and in the shipped configs {packaged_config_dir()}); fix the _BASE_ "
            "entry (shipped bases are named like _base_/market1501.yml)"
        )
    return shipped


def merge_file(cfg: CfgNode, path: PathLike) -> None:
    """Merge a yml file (its ``_BASE_`` files first) into a mutable ``cfg``, in place; ``path``
    is found as :func:`find_config` finds it."""
    _merge_file(cfg, find_config(path), [])


def merge_opts(cfg: CfgNode, opts: Sequence[str]) -> None:
    """Apply ``KEY VALUE`` pairs from the command line.

    An unknown key names close matches and other toolboxes' spellings ("did you mean"); a whole
    number for a float key is that float, as in yml files (``SOLVER.WARMUP_EPOCHS 0``).
    """
    opts = [str(o) if not isinstance(o, str) else o for o in opts]
    if len(opts) % 2:
        raise ConfigError(f"command-line overrides must be KEY VALUE pairs, got {opts}")
    fixed: List[str] = []
    for key, value in zip(opts[0::2], opts[1::2]):
        why = unknown_key_message(cfg, key)
        if why:
            raise ConfigError(f"command line: {why}")
        fixed += [key, _int_text_to_float(cfg, key, value)]
    opts = fixed
    try:
        cfg.merge_from_list(opts)
        resolve_arch_alias(cfg)
    except (KeyError, ValueError, AssertionError) as e:
        msg = e.args[0] if e.args else str(e)
        raise ConfigError(f"command line: {msg}") from None


def _int_text_to_float(cfg: CfgNode, key: str, value: str) -> str:
    node: object = cfg
    for part in key.split("."):
        node = node[part]  # type: ignore[index]
    if isinstance(node, float) and not isinstance(node, bool):
        decoded = CfgNode._decode_cfg_value(value)
        if isinstance(decoded, int) and not isinstance(decoded, bool):
            return repr(float(decoded))
    return value


#: Environment variable naming plugin modules (comma-separated) the user trusts: they are
#: imported in every run, and a config file may name them in ``PLUGINS``.
PLUGINS_ENV = "REIDBOX_PLUGINS"
_imported_plugins: Dict[str, str] = {}  # module -> its file, imported in this process


def env_plugins() -> List[str]:
    """The modules named in ``$REIDBOX_PLUGINS`` (comma- or space-separated)."""
    raw = os.environ.get(PLUGINS_ENV, "")
    return [m for m in raw.replace(",", " ").split() if m]


def imported_plugins() -> Dict[str, str]:
    """Plugin modules this process imported, each with the file it came from."""
    return dict(_imported_plugins)


def opts_set_plugins(opts: Optional[Sequence[str]]) -> bool:
    return bool(opts) and "PLUGINS" in [str(k) for k in list(opts)[0::2]]


def _import_plugin(name: str) -> None:
    import logging
    import sys

    if name in _imported_plugins:
        return
    if not isinstance(name, str) or not name:
        raise ConfigError(f"PLUGINS: {name!r} is not a module name; write e.g. PLUGINS \"['m']\"")
    cwd = os.getcwd()
    # the user named it: a module in the working folder is found, as `python -c` finds it
    # (searched last, so it never shadows an installed module)
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(name)
    except ImportError as e:
        raise ConfigError(
            f"PLUGINS: cannot import {name!r}: {e}; run from the folder holding {name}.py "
            "or put its folder on PYTHONPATH"
        ) from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    where = getattr(module, "__file__", None) or "built in"
    _imported_plugins[name] = where
    logging.getLogger("reidbox").info("plugin %s imported from %s", name, where)


def import_plugins(
    modules: Iterable[str], trusted: bool = False, where: Optional[PathLike] = None
) -> None:
    """Import the plugin modules named in ``PLUGINS`` so their registrations take effect.

    Importing a module runs its code, so a config file alone never imports anything: modules
    are imported when the user named them (``trusted``: ``PLUGINS`` given on the command line
    or in the ``opts`` of :func:`load_config`), listed them in ``$REIDBOX_PLUGINS``, or this
    process imported them already; any other module a config file names is refused.
    """
    modules = list(modules)
    if not trusted:
        allowed = set(env_plugins()) | set(_imported_plugins)
        refused = [m for m in modules if m not in allowed]
        if refused:
            names = ", ".join(repr(m) for m in refused)
            listed = "[" + ", ".join(repr(m) for m in modules) + "]"
            raise ConfigError(
                f"{os.fspath(where) if where else 'config'}: PLUGINS names {names}, which "
                f"would import and run that code; a config file cannot run code on its own: "
                f'if you trust it, opt in: PLUGINS "{listed}" on the command line (in Python: '
                f"load_config(path, ['PLUGINS', \"{listed}\"])), or "
                f"{PLUGINS_ENV}={','.join(refused)} in the environment"
            )
    for name in env_plugins() + modules:
        _import_plugin(name)


def check_ranges(cfg: CfgNode, path: Optional[PathLike] = None) -> None:
    """Every key within the range ``defaults.RANGES`` declares for it, or one ConfigError."""
    from .ranges import range_errors

    errors = range_errors(cfg)
    if errors:
        where = f"config {os.fspath(path)}" if path else "config"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(
            f"{where}: {errors[0]}{more}; valid ranges are listed in "
            "reidbox/config/defaults.py (RANGES)"
        )


def load_config(
    path: Optional[PathLike] = None, opts: Optional[Sequence[str]] = None, freeze: bool = True
) -> CfgNode:
    """Defaults <- yml file (with its ``_BASE_`` files first) <- ``opts``; returned frozen."""
    cfg = get_cfg_defaults()
    if path:
        _merge_file(cfg, find_config(path), [])
    if opts:
        merge_opts(cfg, opts)
    check_ranges(cfg, path)
    import_plugins(cfg.PLUGINS, trusted=opts_set_plugins(opts), where=path)
    if freeze:
        cfg.freeze()
    return cfg


def save_config(cfg: CfgNode, output_dir: PathLike) -> str:
    """Write the merged config to ``output_dir/config.yaml`` (re-loadable as a config file)."""
    from ..utils.misc import write_text
    from ..utils.run_folder import CONFIG_FILE

    out = os.path.join(output_dir, CONFIG_FILE)
    write_text(cfg.dump(), out)
    return out


def flat_config(text: str) -> Dict[str, Any]:
    """A config's yaml text (``cfg.dump()``, a saved ``config.yaml``) as ``{"A.B.C": value}``,
    for comparing two configs key by key."""
    out: Dict[str, Any] = {}

    def walk(d: Dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(yaml.safe_load(text or "") or {}, "")
    return out


def flat_saved_config(text: str) -> Dict[str, Any]:
    """A run's saved ``config.yaml`` as :func:`flat_config` gives it, with every key it lacks at
    its default: a key added to reidbox after that run had its default's behaviour then, so an
    upgrade alone does not make a finished run "another config"."""
    out = flat_config(get_cfg_defaults().dump())
    out.update(flat_config(text))
    return out
