#!/usr/bin/python
# -*- coding: utf-8 -*-
# A thin wrapper over deploy's app commands (docs/cli.md): list, init, install, start, stop, backup, remove.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: app
short_description: An app's state on a host, through C(deploy --json)
description:
  - Runs C(deploy list), C(init), C(install), C(start), C(stop), C(backup) or C(remove) with C(--json) on the
    managed host (or, with I(host), on a host of deploy's own config over ssh) and reports deploy's result.
  - C(changed) is what deploy reported, never a guess. A C(bin/start), C(bin/stop) or C(bin/install) that exits
    75 ("nothing to do", reported by deploy as skipped) is not a change; a script that ran and exited 0 is.
  - Check mode runs deploy's C(--dry-run) (C(--plan) for C(absent)); deploy does not run the app's scripts then,
    so it cannot know whether they would be no-ops, and the task reports C(changed) when a script would run.
version_added: 0.1.0
author: deploykit
options:
  name:
    description: The app's name (its folder under the apps root).
    type: str
    required: true
  state:
    description:
      - C(installed) runs C(deploy install) (first C(deploy init --from) I(source) when the app is not there).
      - C(started) and C(stopped) run C(deploy start) and C(deploy stop).
      - C(backed_up) makes a fresh Borg archive with C(deploy backup); it is always a change.
      - C(absent) takes the app off the host with C(deploy remove --yes); no change when it is not there.
    type: str
    choices: [installed, started, stopped, backed_up, absent]
    default: started
  source:
    description:
      - A folder on the managed host to create the app from (C(deploy init NAME --from SOURCE)) when it is not
        there yet; C(sample) creates it from deploy's sample app. Without it, a missing app fails the task.
    type: str
  backup:
    description: With I(state=absent), make the last backup before removing (C(false) passes C(--no-backup)).
    type: bool
    default: true
  purge_backups:
    description: With I(state=absent), also delete the app's Borg repository (C(--purge-backups)).
    type: bool
    default: false
  host:
    description: Run deploy on this host of deploy's global config (C(deploy --host HOST)) instead of the managed host.
    type: str
  deploy_path:
    description: The deploy executable; default the one on PATH.
    type: path
notes:
  - Secrets stay in the app folder's C(secrets/) (mode 0600); no option of this module carries one.
'''

EXAMPLES = r'''
- name: Notes runs on this host
  deploykit.deploy.app:
    name: notes
    state: started

- name: A fresh archive of every app of the group
  deploykit.deploy.app:
    name: "{{ deploy_app }}"
    state: backed_up

- name: Take the copy on host b off again, without a last backup
  deploykit.deploy.app:
    name: notes
    host: b
    state: absent
    backup: false
'''

RETURN = r'''
result:
  description: deploy's JSON answer (the phase summary, or the remove plan or result).
  returned: when deploy ran
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deploykit.deploy.plugins.module_utils.deploy_cli import fail_deploy, list_apps, run_deploy

PHASE_OF_STATE = {'installed': 'install', 'started': 'start', 'stopped': 'stop', 'backed_up': 'backup'}


def run_phase(module, phase, name, host):
    """Runs deploy PHASE NAME (--dry-run in check mode); returns (changed, summary)."""
    args = [phase, name] + (['--dry-run'] if module.check_mode else [])
    rc, document, stderr, argv = run_deploy(module, args, host)
    if rc != 0 or not isinstance(document, dict):
        fail_deploy(module, rc, document, stderr, argv)
    results = [result for result in document.get('results', []) if result.get('app') == name]
    if module.check_mode:
        return True, document
    return any(result.get('status') == 'ok' for result in results), document


def create_app(module, name, host):
    """deploy init NAME --from SOURCE when the app is missing; fails the task without a source."""
    source = module.params['source']
    where = host or 'this host'
    if not source:
        module.fail_json(msg='%s is not on %s: give source (a folder there, or "sample") to create it with deploy init, '
                             'or migrate it here' % (name, where))
    if module.check_mode:
        return
    args = ['init', name] + ([] if source == 'sample' else ['--from', source])
    rc, document, stderr, argv = run_deploy(module, args, host)
    if rc != 0:
        fail_deploy(module, rc, document, stderr, argv)


def remove_app(module, name, host):
    """deploy remove NAME --yes (--plan in check mode); returns (changed, result)."""
    args = ['remove', name]
    args += ['--plan'] if module.check_mode else ['--yes']
    if not module.params['backup']:
        args.append('--no-backup')
    if module.params['purge_backups']:
        args.append('--purge-backups')
    rc, document, stderr, argv = run_deploy(module, args, host)
    if rc != 0:
        fail_deploy(module, rc, document, stderr, argv)
    return True, document


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', default='started', choices=['installed', 'started', 'stopped', 'backed_up', 'absent']),
            source=dict(type='str'),
            backup=dict(type='bool', default=True),
            purge_backups=dict(type='bool', default=False),
            host=dict(type='str'),
            deploy_path=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    name, state, host = module.params['name'], module.params['state'], module.params['host']
    present = name in list_apps(module, host)

    if state == 'absent':
        if not present:
            module.exit_json(changed=False, msg='%s is not on %s' % (name, host or 'this host'))
        changed, result = remove_app(module, name, host)
        module.exit_json(changed=changed, result=result)

    created = False
    if not present:
        create_app(module, name, host)
        created = True
        if module.check_mode:
            module.exit_json(changed=True, msg='would create %s with deploy init, then run its bin/install' % name)
        changed, result = run_phase(module, 'install', name, host)
        if state == 'installed':
            module.exit_json(changed=True, result=result)
    changed, result = run_phase(module, PHASE_OF_STATE[state], name, host)
    module.exit_json(changed=changed or created, result=result)


if __name__ == '__main__':
    main()
