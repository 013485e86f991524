"""The package's layers point one way: no import cycle (function-level
imports included), no library module that reaches up into the command
line, no module over 450 lines; docs/development.md's layout names every
module."""
import ast
import os
import os.path as osp

from helpers import ROOT

PACKAGES = ('mmseg_plugins', 'mmseg_plugins_mmcv_ops')
#: The module that turns errors into ``error:`` lines and exit codes.
COMMAND_LINE = 'mmseg_plugins.cli'
MAX_LINES = 450


def package_modules():
    """``{dotted name: path}`` of every module of the packages."""
    modules = {}
    for package in PACKAGES:
        for folder, dirs, files in os.walk(osp.join(ROOT, package)):
            dirs[:] = sorted(d for d in dirs if not d.startswith(('.', '_')))
            for name in files:
                if not name.endswith('.py'):
                    continue
                path = osp.join(folder, name)
                parts = osp.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == '__init__':
                    parts = parts[:-1]
                modules['.'.join(parts)] = path
    return modules


def imported_modules(name, path, modules):
    """The package modules that importing ``name`` may import, at any
    depth of its code (function bodies included). Importing ``a.b.c`` runs
    ``a`` and ``a.b`` first, except those already being imported: the
    packages that contain ``name``."""
    is_package = path.endswith('__init__.py')
    package = name if is_package else name.rpartition('.')[0]
    targets = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                source = '.'.join(base + ([node.module] if node.module
                                          else []))
            else:
                source = node.module
            targets.add(source)
            targets.update(f'{source}.{alias.name}' for alias in node.names)
    found = set()
    for target in targets:
        parts = target.split('.')
        for i in range(1, len(parts) + 1):
            prefix = '.'.join(parts[:i])
            if prefix in modules and not (name == prefix or
                                          name.startswith(prefix + '.')):
                found.add(prefix)
    return found


def import_graph():
    modules = package_modules()
    return {name: imported_modules(name, path, modules)
            for name, path in modules.items()}


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_through_function_imports(tmp_path):
    package = tmp_path / 'pkg'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'a.py').write_text('def f():\n    from .b import g\n')
    (package / 'b.py').write_text('from . import a\n')
    modules = {'pkg': str(package / '__init__.py'),
               'pkg.a': str(package / 'a.py'), 'pkg.b': str(package / 'b.py')}
    graph = {n: imported_modules(n, p, modules) for n, p in modules.items()}
    assert graph['pkg.a'] == {'pkg.b'}
    assert cycles(graph) == [['pkg.a', 'pkg.b']]


#: The one deliberate upward call: a ``Pretrained`` init_cfg loads through
#: the weights layer (which builds models to tell a file's layout), by a
#: function-level import at its one call site in the models layer.
UPWARD_CALLS = {'mmseg_plugins.models.pretrained': {
    'mmseg_plugins.weights', 'mmseg_plugins.weights.loading'}}


def _imports_inside_functions_only(path: str, module: str) -> bool:
    tree = ast.parse(open(path).read())
    nested = {id(n) for f in ast.walk(tree)
              if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    sites = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
             and module in (n.module or '')]
    return bool(sites) and all(id(n) in nested for n in sites)


def test_no_import_cycles():
    graph = import_graph()
    modules = package_modules()
    for name, targets in UPWARD_CALLS.items():
        assert targets <= graph[name]
        assert _imports_inside_functions_only(modules[name], 'weights')
        graph[name] -= targets
    assert cycles(graph) == []


def test_only_the_tools_import_the_command_line_module():
    importers = sorted(name for name, targets in import_graph().items()
                       if COMMAND_LINE in targets)
    assert importers == [], importers


def test_library_code_raises_the_package_errors_not_tool_errors():
    offenders = []
    for name, path in package_modules().items():
        if name == COMMAND_LINE:
            continue
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Name) and node.id == 'ToolError':
                offenders.append(f'{name}:{node.lineno}')
    assert offenders == []


def test_no_module_is_over_the_line_limit():
    long = {name: n for name, path in package_modules().items()
            if (n := len(open(path).read().splitlines())) > MAX_LINES}
    assert long == {}


def _documented_layout():
    """What docs/development.md's layout block lists of the package: the
    top-level module file names, and ``{subpackage/: its text}`` (the line
    that opens with ``name/`` and the deeper-indented lines under it)."""
    import re
    with open(osp.join(ROOT, 'docs', 'development.md')) as f:
        page = f.read()
    block = page.split('## Layout', 1)[1].split('```')[1]
    package = block.split('\nmmseg_plugins/\n', 1)[1].split(
        '\nmmseg_plugins_mmcv_ops/', 1)[0]
    modules, subpackages, current = set(), {}, None
    for line in package.splitlines():
        if line.startswith('   '):  # continues the entry above
            if current:
                subpackages[current] += line
            continue
        first = line.split()[0]
        current = first if first.endswith('/') else None
        if current:
            subpackages[current] = line
        else:
            modules.update(re.findall(r'\b\w+\.py\b', line))
    return modules, subpackages


def test_development_page_layout_names_every_module():
    import re
    modules, subpackages = _documented_layout()
    missing = []
    for name, path in package_modules().items():
        parts = name.split('.')
        if parts[0] != 'mmseg_plugins' or len(parts) == 1:
            continue
        if osp.basename(path) == '__init__.py':
            listed = parts[1] + '/' in subpackages
        elif len(parts) == 2:
            listed = parts[1] + '.py' in modules
        else:
            listed = re.search(rf'\b{parts[2]}\.py\b',
                               subpackages.get(parts[1] + '/', ''))
        if not listed:
            missing.append('/'.join(parts[1:]) + ('/' if osp.basename(
                path) == '__init__.py' else '.py'))
    assert not missing, f'not in docs/development.md\'s layout: {missing}'


def _dotted(node) -> str:
    """``a.b.c`` of an attribute chain (empty for anything else)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return '.'.join([node.id] + parts[::-1])
    return ''


#: Global random state that library code must not reseed.
GLOBAL_SEEDS = ('torch.manual_seed', 'torch.random.manual_seed',
                'torch.cuda.manual_seed', 'torch.cuda.manual_seed_all',
                'np.random.seed', 'numpy.random.seed', 'random.seed')


def test_no_global_reseeding_and_no_private_torch_api():
    """Library code draws from local generators (no global reseeding, but
    inside ``torch.random.fork_rng``, which restores the caller's state) and
    uses no private torch API (``torch._C``)."""
    offenders = []
    for name, path in package_modules().items():
        tree = ast.parse(open(path).read())
        restored = {id(n) for w in ast.walk(tree) if isinstance(w, ast.With)
                    and any(_dotted(getattr(i.context_expr, 'func', None))
                            == 'torch.random.fork_rng' for i in w.items)
                    for n in ast.walk(w)}  # seeded, then restored
        for node in ast.walk(tree):
            chain = _dotted(node) if isinstance(node, ast.Attribute) else ''
            if (chain in GLOBAL_SEEDS and id(node) not in restored) or \
                    chain.startswith('torch._C'):
                offenders.append(f'{name}:{node.lineno} {chain}')
    assert offenders == []


def test_the_reseeding_check_finds_a_reseed():
    tree = ast.parse('import torch\ntorch.manual_seed(0)\nx = torch._C._nn')
    chains = {_dotted(n) for n in ast.walk(tree)
              if isinstance(n, ast.Attribute)}
    assert 'torch.manual_seed' in chains and 'torch._C._nn' in chains
