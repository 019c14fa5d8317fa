"""The checkout's ``training_loop()`` rewritten from its source for the 'resume', 'cond_copy'
and 'device' patch features (see patch.py): an AST transform of the named statements, compiled
into the module's namespace with the run-time helpers of stand_ins.py. A statement that is not
where the patch expects it (a fork changed it) is a PatchError naming it; nothing is changed."""
import ast
import inspect
import os
import textwrap

from plugin.errors import PatchError

from .stand_ins import (copy_params_widening, cuda_or_cpu_stand_in, ddp_device_ids, loop_device, pin_memory,
                        resume_augment_p, resume_nimg)


# -- the rewrite -----------------------------------------------------------------------------
def patched_training_loop(module, features):
    """``module.training_loop`` rewritten for ``features``; PatchError if its layout differs."""
    fn = module.training_loop
    src = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(src)
    func = tree.body[0]
    if not isinstance(func, ast.FunctionDef) or func.name != 'training_loop':
        raise PatchError(f'{module.__file__}: training_loop is not a plain function')
    where = f'{os.path.basename(module.__file__)}: training_loop()'
    if 'resume' in features:
        _replace_assign(func, 'cur_nimg', '_cocktail_resume_nimg(resume_pkl)', where, 'cur_nimg = 0')
        _insert_after_call(func, 'augment_pipe.p.copy_', '_cocktail_resume_augment_p(augment_pipe, resume_pkl)', where)
    if 'cond_copy' in features:
        _rename_call(func, 'misc.copy_params_and_buffers', '_cocktail_copy_params', where)
    if 'device' in features:
        _choose_device(func, where)
    ast.fix_missing_locations(tree)
    namespace = dict(module.__dict__, _cocktail_resume_nimg=resume_nimg,
                     _cocktail_resume_augment_p=resume_augment_p, _cocktail_copy_params=copy_params_widening,
                     _cocktail_loop_device=loop_device, _cocktail_cuda=cuda_or_cpu_stand_in,
                     _cocktail_pin_memory=pin_memory, _cocktail_device_ids=ddp_device_ids)
    exec(compile(tree, module.__file__, 'exec'), namespace)
    new = namespace['training_loop']
    new.__cocktail_patched__ = tuple(features)
    return new


def _walk_statements(func):
    for node in ast.walk(func):
        for field in ('body', 'orelse', 'finalbody'):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list):
                yield stmts


def _replace_assign(func, target, expr, where, expected):
    for stmts in _walk_statements(func):
        for i, s in enumerate(stmts):
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name) \
                    and s.targets[0].id == target and _is_start_value(s.value):
                s.value = ast.parse(expr, mode='eval').body
                return
    raise PatchError(f'{where} does not match the layout the patch expects: no `{expected}`')


def _is_start_value(node):
    """`0` (stylegan2-ada) or `resume_kimg * 1000` (the stylegan3 repo's loop)."""
    if isinstance(node, ast.Constant):
        return node.value == 0
    return ast.unparse(node) == 'resume_kimg * 1000'


def _call_name(node):
    return ast.unparse(node.func) if isinstance(node, ast.Call) else None


def _insert_after_call(func, call, stmt, where):
    for stmts in _walk_statements(func):
        for i, s in enumerate(stmts):
            if isinstance(s, ast.Expr) and _call_name(s.value) == call:
                stmts.insert(i + 1, ast.parse(stmt).body[0])
                return
    raise PatchError(f'{where} does not match the layout the patch expects: no `{call}(...)` statement')


def _rename_call(func, call, new_name, where):
    found = False
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and _call_name(node) == call:
            node.func = ast.Name(id=new_name, ctx=ast.Load())
            found = True
    if not found:
        raise PatchError(f'{where} does not match the layout the patch expects: no `{call}(...)` call')


def _is_cuda_device_call(node):
    return isinstance(node, ast.Call) and _call_name(node) == 'torch.device' and node.args \
        and isinstance(node.args[0], ast.Constant) and node.args[0].value == 'cuda'


def _choose_device(func, where):
    """`device = torch.device('cuda', rank)` -> the ``device=`` argument (added to the
    signature); `torch.cuda.X(...)` -> `_cocktail_cuda(device).X(...)`; `t.pin_memory()` ->
    `_cocktail_pin_memory(t, device)`; `device_ids=[device]` -> `_cocktail_device_ids(device)`."""
    names = [a.arg for a in func.args.args + func.args.kwonlyargs]
    if 'device' in names:
        raise PatchError(f'{where} already takes a `device` argument; the device patch does not apply')
    found = False
    for stmts in _walk_statements(func):
        for s in stmts:
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name) \
                    and s.targets[0].id == 'device' and _is_cuda_device_call(s.value):
                rank = s.value.args[1] if len(s.value.args) > 1 else ast.Constant(0)
                s.value = ast.Call(func=ast.Name(id='_cocktail_loop_device', ctx=ast.Load()),
                                   args=[ast.Name(id='device', ctx=ast.Load()), rank], keywords=[])
                found = True
    if not found:
        raise PatchError(f"{where} does not match the layout the patch expects: no `device = torch.device('cuda', rank)`")
    func.args.kwonlyargs.append(ast.arg(arg='device'))
    func.args.kw_defaults.append(ast.Constant(None))
    device = ast.Name(id='device', ctx=ast.Load())
    for node in ast.walk(func):
        if not isinstance(node, ast.Call):
            continue
        target = node.func
        if isinstance(target, ast.Attribute) and ast.unparse(target.value) == 'torch.cuda':
            target.value = ast.Call(func=ast.Name(id='_cocktail_cuda', ctx=ast.Load()), args=[device], keywords=[])
        elif isinstance(target, ast.Attribute) and target.attr == 'pin_memory' and not node.args:
            node.args = [target.value, device]
            node.func = ast.Name(id='_cocktail_pin_memory', ctx=ast.Load())
        for kw in node.keywords:
            if kw.arg == 'device_ids':
                kw.value = ast.Call(func=ast.Name(id='_cocktail_device_ids', ctx=ast.Load()), args=[device], keywords=[])


# -- what the patched loop calls -------------------------------------------------------------------
