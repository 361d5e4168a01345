#!/usr/bin/python
# -*- coding: utf-8 -*-
# A thin wrapper over `deploy migrate --json` (docs/migrate.md): the move, its rollback on the target and
# its report are deploy's; this module decides only whether to run it and turns the report into a result.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: migrate
short_description: Move an app from the host it runs on to another host with C(deploy migrate)
description:
  - Runs C(deploy migrate NAME --to TO --json) on the managed host (the source). The target verifies, installs,
    starts and health-checks the app and rolls itself back when anything fails; the source is not changed
    beyond a fresh Borg archive. The source copy keeps running - stopping it and pointing DNS at the target
    are the operator's cutover.
  - When C(deploy list --host TO) already shows the app on the target and I(replace) is false, nothing runs and
    the task is not changed (a second run of a playbook is a no-op). With I(replace), it always migrates.
  - Check mode runs C(deploy migrate --plan), which changes nothing on either host; the plan is returned.
  - A failed migration fails the task with deploy's reason; the report (with what the target rolled back) is
    returned as C(report).
version_added: 0.1.0
author: deploykit
options:
  name:
    description: The app's name.
    type: str
    required: true
  to:
    description: The target, a host of deploy's global config on the source.
    type: str
    required: true
  transport:
    description: C(--transport); default the app's C(migrate.transport).
    type: str
    choices: [ssh, ffl, scp, local]
  replace:
    description: C(--replace) - replace the copy on the target; the old one is kept aside until the new one is healthy.
    type: bool
    default: false
  with_history:
    description: C(--with-history) - carry the whole Borg repository.
    type: bool
    default: false
  retries:
    description: C(--retries N) - new sessions after a transport failure.
    type: int
  host:
    description: Run the migrate on this host of deploy's config (C(deploy --host HOST)) instead of the managed host.
    type: str
  deploy_path:
    description: The deploy executable; default the one on PATH.
    type: path
notes:
  - Pairing mode (C(deploy migrate --pair)) is not wrapped yet; see docs/fleet.md.
  - Two migrations of the same app are refused by deploy's app lock (exit 7); different apps of one host
    migrate in parallel when the play's forks and serial allow it.
'''

EXAMPLES = r'''
- name: Move notes from this host to b
  deploykit.deploy.migrate:
    name: notes
    to: b
  register: moved

- name: Replace the copy on c, over ffl
  deploykit.deploy.migrate:
    name: notes
    to: c
    transport: ffl
    replace: true
'''

RETURN = r'''
report:
  description: deploy's MigrateReport (parts, bytes, targetReport with verification and rolledBack, failure).
  returned: when the migration ran
  type: dict
plan:
  description: deploy's plan (check mode).
  returned: in check mode, when a migration would run
  type: dict
summary:
  description: One line per part and per verification check, for the play's output.
  returned: when the migration ran
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deploykit.deploy.plugins.module_utils.deploy_cli import describe_failure, fail_deploy, list_apps, run_deploy


def summarize(report):
    """The report as short lines: parts with bytes, verification checks, what the target rolled back."""
    lines = []
    for part in report.get('parts') or []:
        lines.append('part %s: %s, %s bytes' % (part.get('id'), part.get('status'), part.get('bytes')))
    target = report.get('targetReport') or {}
    verification = target.get('verification') or {}
    for check in verification.get('checks') or []:
        lines.append('verify %s: %s' % (check.get('name'), 'ok' if check.get('ok') else 'FAILED ' + str(check.get('detail'))))
    for undone in target.get('rolledBack') or []:
        lines.append('rolled back on the target: %s' % undone)
    for left in target.get('rollbackFailed') or []:
        lines.append('NOT rolled back on the target: %s' % left)
    return lines


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            to=dict(type='str', required=True),
            transport=dict(type='str', choices=['ssh', 'ffl', 'scp', 'local']),
            replace=dict(type='bool', default=False),
            with_history=dict(type='bool', default=False),
            retries=dict(type='int'),
            host=dict(type='str'),
            deploy_path=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    name, target, host = params['name'], params['to'], params['host']
    if not params['replace'] and name in list_apps(module, target):
        module.exit_json(changed=False, msg='%s is already on %s (replace: true sends it again)' % (name, target))

    args = ['migrate', name, '--to', target]
    if params['transport']:
        args += ['--transport', params['transport']]
    if params['replace']:
        args.append('--replace')
    if params['with_history']:
        args.append('--with-history')
    if params['retries'] is not None:
        args += ['--retries', str(params['retries'])]
    if module.check_mode:
        args.append('--plan')

    rc, report, stderr, argv = run_deploy(module, args, host)
    if module.check_mode:
        if rc != 0:
            fail_deploy(module, rc, report, stderr, argv)
        module.exit_json(changed=True, plan=report, msg='would migrate %s to %s' % (name, target))
    if rc != 0 or not isinstance(report, dict) or not report.get('ok'):
        summary = summarize(report) if isinstance(report, dict) else []
        module.fail_json(msg='%s to %s: %s' % (name, target, describe_failure(rc, report, stderr)), rc=rc, cmd=argv,
                         report=report, summary=summary, stderr=stderr)
    module.exit_json(changed=True, report=report, summary=summarize(report),
                     msg='%s moved to %s in %.1f s (run %s)' % (name, target, report.get('durationMs', 0) / 1000.0, report.get('runId')))


if __name__ == '__main__':
    main()
