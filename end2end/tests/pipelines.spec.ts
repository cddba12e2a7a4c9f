import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { login } from './auth';

const stamp = Date.now();
const project = `pipe-${stamp}`;

test.afterAll(() => {
  try {
    const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=dev.slipway.project-slug=${project}`]).toString().split(/\s+/).filter(Boolean);
    if (ids.length) execFileSync('docker', ['rm', '-f', ...ids]);
  } catch {
    /* the engine may already be gone */
  }
});

test('a deploy by sha runs the pipeline, visible step by step', async ({ page }) => {
  test.setTimeout(120_000);
  await login(page);
  const dir = mkdtempSync(join(tmpdir(), 'slipway-e2e-pipe-'));
  mkdirSync(join(dir, '.slipway'));
  mkdirSync(join(dir, 'web'));
  writeFileSync(
    join(dir, '.slipway/manifest.yaml'),
    [
      'services:', '  web:', '    build: web',
      'environments:', '  - name: test',
      'pipelines:', '  release:', '    steps:',
      '      - name: build', '        build: {}',
      '      - name: release', '        release: {}', '        depends_on: [build]',
      '      - name: deploy-test', '        deploy:', '          environment: test', '        depends_on: [release]', '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'web/Dockerfile'), `FROM slipway/busybox:1\nRUN echo pipe-${stamp} > /index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/"]\n`);
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, '-c', 'user.name=e2e', '-c', 'user.email=e2e@localhost', ...args]).toString();
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '-m', 'pipe');
  const sha = git('rev-parse', 'HEAD').trim();
  const created = await page.request.post('/api/projects/create', { data: { input: { name: project, repo_url: dir } } });
  expect(created.ok(), await created.text()).toBeTruthy();
  const res = await page.request.post('/api/deployments/request', { data: { project, request: { environment: 'test', git_sha: sha } } });
  expect(res.ok(), await res.text()).toBeTruthy();
  const runId = (await res.json()).pipeline_run_id as string;
  expect(runId).toMatch(/^pip_/);

  await page.goto(`/pipelines/${runId}`);
  await expect(page.locator('body[data-hydrated="true"]')).toBeVisible();
  const steps = page.locator('#pipeline-steps tbody tr');
  await expect(steps).toHaveCount(3);
  // The page follows the run live until every step has succeeded.
  await expect(page.locator('#pipeline-run')).toHaveAttribute('data-status', 'succeeded', { timeout: 90_000 });
  for (const step of ['build', 'release', 'deploy-test']) {
    await expect(page.locator(`#pipeline-steps tr[data-step="${step}"]`)).toHaveAttribute('data-status', 'succeeded');
  }
  await expect(page.locator('#pipeline-steps tr[data-step="build"]')).toContainText('bld_');
});
