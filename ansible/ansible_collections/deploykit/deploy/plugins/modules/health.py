#!/usr/bin/python
# -*- coding: utf-8 -*-
# A thin wrapper over `deploy health --json`: the checks are the app's own (app.yaml), run by deploy.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: health
short_description: Run an app's health checks with C(deploy health) and fail with the failing checks' reasons
description:
  - Runs C(deploy health NAME --json) on the managed host (or, with I(host), on a host of deploy's config) and
    fails the task when a check fails, naming each failing check with its reason. Never changes anything.
version_added: 0.1.0
author: deploykit
options:
  name:
    description: The app's name.
    type: str
    required: true
  checks:
    description: Only these checks (C(--check NAME) each); default all of the app's checks.
    type: list
    elements: str
  base_url:
    description: C(--base-url) - where the checks send their requests.
    type: str
  host:
    description: Run the checks on this host of deploy's config (C(deploy --host HOST)).
    type: str
  deploy_path:
    description: The deploy executable; default the one on PATH.
    type: path
'''

EXAMPLES = r'''
- name: Notes on b passes its checks
  deploykit.deploy.health:
    name: notes
    host: b
'''

RETURN = r'''
checks:
  description: Each check with its status and, when it failed, its reason.
  returned: always
  type: list
  elements: dict
failed_checks:
  description: "C(name: reason) of each failing check."
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deploykit.deploy.plugins.module_utils.deploy_cli import fail_deploy, run_deploy


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            checks=dict(type='list', elements='str'),
            base_url=dict(type='str'),
            host=dict(type='str'),
            deploy_path=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    name, host = module.params['name'], module.params['host']
    args = ['health', name]
    for check in module.params['checks'] or []:
        args += ['--check', check]
    if module.params['base_url']:
        args += ['--base-url', module.params['base_url']]
    rc, document, stderr, argv = run_deploy(module, args, host)
    # Exit 1 = a check failed, with the checks in the document; anything else without checks is deploy failing.
    if not isinstance(document, dict) or 'checks' not in document:
        fail_deploy(module, rc, document, stderr, argv)
    checks = [dict((key, check.get(key)) for key in ('name', 'type', 'status', 'reason', 'expected', 'got', 'durationMs'))
              for check in document['checks']]
    failed = ['%s: %s' % (check['name'], check.get('reason') or 'failed') for check in checks if check['status'] == 'failed']
    where = document.get('host') or host or 'this host'
    if rc != 0 or failed or not document.get('ok'):
        module.fail_json(msg='%s on %s is unhealthy: %s' % (name, where, '; '.join(failed) or 'deploy health exit %s' % rc),
                         checks=checks, failed_checks=failed, base_url=document.get('baseUrl'))
    module.exit_json(changed=False, checks=checks, failed_checks=[], base_url=document.get('baseUrl'),
                     msg='%s on %s: %d checks ok' % (name, where, len(checks)))


if __name__ == '__main__':
    main()
