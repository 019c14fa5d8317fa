"""The package's import structure: no circle of modules that import each other and no import
that runs upward (torch_utils_ext -> plugin -> training_ext is the allowed direction), imports
inside functions included (a hidden import is still a tie). Walks the source text; imports
nothing of the project."""
import ast
import os

from tests.helpers import REPO

LAYERS = ['torch_utils_ext', 'plugin', 'training_ext']      # bottom -> top


def _modules():
    files = {}
    for top in LAYERS:
        for folder, _, names in os.walk(REPO / top):
            for name in names:
                if name.endswith('.py'):
                    path = os.path.join(folder, name)
                    mod = os.path.relpath(path, REPO)[:-3].replace(os.sep, '.')
                    files[mod[:-9] if mod.endswith('.__init__') else mod] = path
    return files


def _graph(files):
    graph = {}
    for mod, path in files.items():
        is_pkg = path.endswith('__init__.py')
        targets = set()
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split('.')
                    base = base[:len(base) - node.level + (1 if is_pkg else 0)]
                    prefix = '.'.join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ''
                names = [f'{prefix}.{a.name}' if f'{prefix}.{a.name}' in files else prefix for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in files:          # a name inside a module: that module
                    name = name.rpartition('.')[0]
                if name and name != mod:
                    targets.add(name)
        graph[mod] = targets
    return graph


def _circles(graph):
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_circles():
    circles = _circles(_graph(_modules()))
    assert not circles, 'import circles: ' + '; '.join(' <-> '.join(c) for c in circles)


def test_no_upward_imports():
    graph = _graph(_modules())
    layer = {m: LAYERS.index(m.split('.')[0]) for m in graph}
    upward = sorted(f'{m} -> {t}' for m, ts in graph.items() for t in ts if layer[t] > layer[m])
    assert not upward, 'upward imports: ' + ', '.join(upward)


def test_the_walker_sees_a_circle_and_an_upward_import():
    """The checks bite: a made-up graph with a hidden circle and an upward edge is caught."""
    graph = {'plugin.a': {'plugin.b'}, 'plugin.b': {'plugin.c'}, 'plugin.c': {'plugin.a'}, 'plugin.d': set()}
    assert _circles(graph) == [['plugin.a', 'plugin.b', 'plugin.c']]
    assert _circles({'plugin.a': {'plugin.b'}, 'plugin.b': set()}) == []
