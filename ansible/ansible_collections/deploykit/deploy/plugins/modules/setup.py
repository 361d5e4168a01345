#!/usr/bin/python
# -*- coding: utf-8 -*-
# A thin wrapper over `deploy setup HOST --json`: what a host needs, and installing it, are deploy's.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: setup
short_description: Put deploy and the tools its apps need on a host with C(deploy setup)
description:
  - Runs C(deploy setup HOST --json) on the managed host, which reaches I(host) over ssh as its deploy config says
    (run it where C(deploy migrate) runs, e.g. with C(delegate_to)). deploy checks Node, borg, GNU tar, the acl/attr
    tools, python3, the database client and server the apps need and ffl, installs missing Debian packages when
    I(install) is true, installs or upgrades deploy itself from the release tarball, and creates the apps root and
    state dir. C(changed) is true when it changed something; a second run reports no change.
  - Check mode runs C(deploy setup --plan) and reports whether it would change something.
version_added: 0.1.0
author: deploykit
options:
  host:
    description: The host to set up, as named in deploy's config on the managed host.
    type: str
    required: true
  apps:
    description: Apps (in the managed host's apps root) the host will run; their database kind and transport decide what else it needs (C(--app) each).
    type: list
    elements: str
  with:
    description: Also check for these (C(--with) each).
    type: list
    elements: str
    choices: [postgres, mariadb, ffl]
  install:
    description: Install missing Debian packages with apt-get. Without it, missing packages fail the task, naming them, and nothing changes.
    type: bool
    default: true
  release:
    description: The deploykit release tarball to install deploy from (C(--release)); default deploy's own default.
    type: path
  deploy_path:
    description: The deploy executable; default the one on PATH.
    type: path
'''

EXAMPLES = r'''
- name: Host b can take notes
  deploykit.deploy.setup:
    host: b
    apps: [notes]
    release: /srv/releases/deploykit-0.1.0.tgz
  delegate_to: a
'''

RETURN = r'''
changes:
  description: What deploy changed on the host (in check mode, the steps it would run).
  returned: always
  type: list
  elements: str
checks:
  description: Each thing deploy checked, what it found and what it needs.
  returned: always
  type: list
  elements: dict
packages:
  description: Debian packages the host lacked.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deploykit.deploy.plugins.module_utils.deploy_cli import fail_deploy, run_deploy


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type='str', required=True),
            apps=dict(type='list', elements='str'),
            with_=dict(type='list', elements='str', choices=['postgres', 'mariadb', 'ffl'], aliases=['with']),
            install=dict(type='bool', default=True),
            release=dict(type='path'),
            deploy_path=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    args = ['setup', params['host']]
    for app in params['apps'] or []:
        args += ['--app', app]
    for extra in params['with_'] or []:
        args += ['--with', extra]
    if params['release']:
        args += ['--release', params['release']]
    if module.check_mode:
        args.append('--plan')
    elif params['install']:
        args.append('--install')
    rc, document, stderr, argv = run_deploy(module, args)
    if rc != 0 or not isinstance(document, dict):
        fail_deploy(module, rc, document, stderr, argv)
    if module.check_mode:
        changes = [step.get('title') for step in document.get('steps') or []]
    else:
        changes = list(document.get('changed') or [])
    module.exit_json(changed=len(changes) > 0, changes=changes, checks=document.get('checks') or [], packages=document.get('packages') or [],
                     msg='%s: %s' % (params['host'], '; '.join(changes) if changes else 'nothing to change'))


if __name__ == '__main__':
    main()
