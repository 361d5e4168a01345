# -*- coding: utf-8 -*-
# The one place the collection's modules run `deploy` and read its JSON answer (docs/cli.md: every
# `--json` result is one JSON document on stdout, errors too: {"ok": false, "error": {...}}).
# Nothing of deploy's own logic lives here: the modules pass options through and read the result.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

# docs/cli.md, "Exit codes".
EXIT_MEANINGS = {
    1: 'a health check failed',
    2: 'usage error',
    3: 'configuration error',
    4: 'a bin/<phase> script failed',
    5: 'a transport or stream failed',
    6: 'a dependency is missing',
    7: 'conflict',
    70: 'internal error in deploy',
    130: 'interrupted',
}


def find_deploy(module):
    """The deploy executable on the managed host: the deploy_path option, else PATH; fails the task when absent."""
    path = module.params.get('deploy_path')
    if path:
        return path
    found = module.get_bin_path('deploy', required=False, opt_dirs=['/usr/local/bin', '/opt/deploykit/bin'])
    if not found:
        module.fail_json(msg='deploy is not installed on this host (looked in PATH, /usr/local/bin and /opt/deploykit/bin): '
                             'install the deploykit release there (docs/fleet.md, "Prepare every host") or set deploy_path')
    return found


def deploy_argv(module, args, host=None):
    """argv of `deploy [--host HOST] --json -q ARGS...`; the global --host comes from the module's host option."""
    argv = [find_deploy(module)]
    if host:
        argv += ['--host', host]
    return argv + ['--json', '-q'] + list(args)


def run_deploy(module, args, host=None):
    """Runs deploy with --json; returns (exit code, parsed JSON or None, stderr, argv)."""
    argv = deploy_argv(module, args, host)
    rc, stdout, stderr = module.run_command(argv, check_rc=False)
    try:
        document = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        document = None
    return rc, document, stderr, argv


def describe_phase_failure(result):
    """app:phase, exit code and the last stderr line of one failed bin/<phase> run."""
    lines = (result.get('stderrTail') or '').strip().splitlines()
    return '%s:%s failed (exit %s): %s' % (result.get('app'), result.get('phase'), result.get('exitCode'), lines[-1] if lines else 'no output')


def describe_failure(rc, document, stderr):
    """One line saying why a deploy run failed: deploy's own error (message and hint), else its stderr's tail."""
    if isinstance(document, dict):
        error = document.get('error') or document.get('failure')
        if isinstance(error, dict) and error.get('message'):
            text = error['message']
            if error.get('hint'):
                text += ' (' + error['hint'] + ')'
            return text
        results = document.get('results')
        if isinstance(results, list):
            failed = [result for result in results if result.get('status') == 'failed']
            if failed:
                return '; '.join(describe_phase_failure(result) for result in failed)
    tail = (stderr or '').strip().splitlines()[-3:]
    meaning = EXIT_MEANINGS.get(rc, 'exit %s' % rc)
    return '%s: %s' % (meaning, ' / '.join(tail) if tail else 'no output')


def fail_deploy(module, rc, document, stderr, argv, **extra):
    """Fails the task with deploy's own reason, its exit code, argv and JSON document."""
    module.fail_json(msg=describe_failure(rc, document, stderr), rc=rc, cmd=argv, deploy=document, stderr=stderr, **extra)


def list_apps(module, host=None):
    """The apps `deploy list --json` shows on the host (or on --host HOST): a dict name -> entry."""
    rc, document, stderr, argv = run_deploy(module, ['list'], host)
    if rc != 0 or not isinstance(document, dict):
        fail_deploy(module, rc, document, stderr, argv)
    return dict((app['name'], app) for app in document.get('apps', []))
