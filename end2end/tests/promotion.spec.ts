import { test, expect, Browser, Page, APIRequestContext, Locator, Request, Response } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { login } from './auth';

const PASSWORD = 'promotion-e2e-password';
const stamp = Date.now();
const project = `promo-${stamp}`;

function repo(): string {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-e2e-promo-'));
  mkdirSync(join(dir, '.slipway'));
  mkdirSync(join(dir, 'web'));
  writeFileSync(
    join(dir, '.slipway/manifest.yaml'),
    [
      'services:',
      '  web:',
      '    build: web',
      'environments:',
      '  - name: test',
      '  - name: staging',
      '  - name: production',
      '    approval:',
      '      required: 2',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'web/Dockerfile'),
    `FROM slipway/busybox:1\nRUN mkdir -p /srv && echo promo-${stamp} > /srv/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/srv"]\n`,
  );
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, '-c', 'user.name=e2e', '-c', 'user.email=e2e@localhost', ...args]);
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '-m', 'promo');
  return dir;
}

async function ok(res: Promise<any>) {
  const r = await res;
  expect(r.ok(), await r.text()).toBeTruthy();
  return r.json();
}

async function userPage(browser: Browser, username: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, username, PASSWORD);
  return page;
}

/**
 * Clicks `button` until the click has sent a POST to `path`, then returns the
 * server's answer. The board re-renders itself every 1.5 s: a click whose
 * mouse-down lands on the old button and mouse-up on its replacement sends
 * nothing, so the click is repeated — but never once a request has left.
 */
async function clickAndAnswer(page: Page, button: Locator, path: string): Promise<Response> {
  let sent: Request | undefined;
  const watch = (r: Request) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === path) sent ??= r;
  };
  page.on('request', watch);
  try {
    await expect(async () => {
      if (!sent) await button.click();
      await expect.poll(() => sent !== undefined, { timeout: 5_000 }).toBe(true);
    }).toPass({ timeout: 45_000 });
  } finally {
    page.off('request', watch);
  }
  const answer = await sent!.response();
  expect(answer, `${path} got no answer`).toBeTruthy();
  return answer!;
}

test.afterAll(() => {
  // Remove the containers this test deployed.
  try {
    const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=dev.slipway.project-slug=${project}`]).toString().split(/\s+/).filter(Boolean);
    if (ids.length) execFileSync('docker', ['rm', '-f', ...ids]);
  } catch {
    /* the engine may already be gone */
  }
});

test('promote as a developer, approve as two approvers, the board follows without a reload', async ({ page, browser }) => {
  test.setTimeout(180_000);
  // The administrator sets up the project and its people.
  await login(page);
  const api: APIRequestContext = page.request;
  await ok(api.post('/api/projects/create', { data: { input: { name: project, repo_url: repo() } } }));
  for (const [username, role] of [['dev', 'developer'], ['ap1', 'approver'], ['ap2', 'approver']]) {
    const name = `${username}-${stamp}`;
    await ok(api.post('/api/users/create', { data: { username: name, password: PASSWORD } }));
    await ok(api.post('/api/members/set', { data: { project, username: name, role } }));
  }

  // The developer builds, releases and deploys to test through the API…
  const dev = await userPage(browser, `dev-${stamp}`);
  const build = await ok(dev.request.post('/api/builds/create', { data: { input: { project } } }));
  await expect
    .poll(async () => (await ok(dev.request.post('/api/builds/show', { data: { build: build.spec.id } }))).runs[0].status, { timeout: 60_000 })
    .toBe('completed');
  const release = await ok(dev.request.post('/api/releases/create', { data: { input: { project, build: build.spec.id, tag: 'v1.0.0' } } }));
  await ok(dev.request.post('/api/deployments/request', { data: { project, request: { environment: 'test', release: 'v1.0.0' } } }));

  // …then promotes with one click on the board.
  let reloads = 0;
  dev.on('load', () => reloads++);
  await dev.goto(`/environments?project=${project}`);
  await expect(dev.locator('body[data-hydrated="true"]')).toBeVisible();
  reloads = 0;
  const column = (p: Page, env: string) => p.locator(`#board section[data-env="${env}"]`);
  await expect(column(dev, 'test').locator('[data-current="v1.0.0"]')).toBeVisible({ timeout: 60_000 });
  const promoted = await clickAndAnswer(dev, column(dev, 'test').getByRole('button', { name: 'Promote to staging →' }), '/api/deployments/promote');
  expect(promoted.status(), await promoted.text()).toBe(200);
  await expect(column(dev, 'staging').locator('[data-current="v1.0.0"]')).toBeVisible({ timeout: 60_000 });
  const gated = await clickAndAnswer(dev, column(dev, 'staging').getByRole('button', { name: 'Promote to production →' }), '/api/deployments/promote');
  expect(gated.status(), await gated.text()).toBe(200);
  expect((await gated.json()).status).toBe('awaiting_approval');
  const pending = column(dev, 'production').locator('.pending');
  await expect(pending).toContainText('awaiting_approval', { timeout: 30_000 });
  await expect(pending).toContainText('approvals 0/2');
  // A developer cannot approve: the role check answers before anything else
  // (nobody may approve their own request either: engine tests).
  const refused = await clickAndAnswer(dev, pending.getByRole('button', { name: 'Approve' }), '/api/deployments/approve');
  expect(refused.status(), await refused.text()).toBe(403);
  const alert = dev.getByRole('alert');
  await expect(alert.locator('strong')).toHaveText('Not allowed');
  await expect(alert.locator('p')).toHaveText('your role in this project (developer) does not allow approve');
  await expect(pending).toContainText('approvals 0/2');

  // Two approvers approve, each on their own board; each sees the previous
  // approval before clicking, and gets its own answer before leaving.
  for (const [who, before] of [['ap1', 0], ['ap2', 1]] as const) {
    const username = `${who}-${stamp}`;
    const ap = await userPage(browser, username);
    await ap.goto(`/environments?project=${project}`);
    await expect(ap.locator('body[data-hydrated="true"]')).toBeVisible();
    const gate = column(ap, 'production').locator('.pending');
    await expect(gate).toContainText(`approvals ${before}/2`);
    const answer = await clickAndAnswer(ap, gate.getByRole('button', { name: 'Approve' }), '/api/deployments/approve');
    expect(answer.status(), await answer.text()).toBe(200);
    const approved = await answer.json();
    expect(approved.approvals.map((a: any) => a.username)).toContain(username);
    if (before === 0) {
      expect(approved.status).toBe('awaiting_approval');
      expect(approved.approvals_needed).toBe(1);
      await expect(gate).toContainText('approvals 1/2');
      await expect(gate).toContainText(`✓ ${username}`);
    } else {
      expect(['deploying', 'succeeded']).toContain(approved.status);
      expect(approved.approvals_needed).toBe(0);
    }
    await ap.context().close();
  }

  // The developer's board shows production running v1.0.0, without a reload.
  await expect(column(dev, 'production').locator('[data-current="v1.0.0"]')).toBeVisible({ timeout: 60_000 });
  expect(reloads).toBe(0);

  // Production runs exactly the release's digests.
  const board = await ok(dev.request.post('/api/deployments/board', { data: { project } }));
  const prod = board.environments.find((c: any) => c.environment.name === 'production');
  expect(prod.current.image_digests).toEqual(release.image_digests);
  expect(prod.current.containers.map((c: any) => c.digest)).toEqual(Object.values(release.image_digests));
  await dev.context().close();
});

test('an administrator adds an environment from the board, and switches auto-release on', async ({ page }) => {
  await login(page);
  const name = `envs-${Date.now()}`;
  const dir = mkdtempSync(join(tmpdir(), 'slipway-e2e-envs-'));
  execFileSync('git', ['init', '-q', dir]);
  await ok(page.request.post('/api/projects/create', { data: { input: { name, repo_url: dir } } }));

  await page.goto(`/environments?project=${name}`);
  await expect(page.locator('body[data-hydrated="true"]')).toBeVisible();
  await page.locator('#new-environment input[name="env-name"]').fill('qa');
  await page.locator('#new-environment input[name="env-approvals"]').fill('1');
  await page.getByRole('button', { name: 'Add environment' }).click();
  const column = page.locator('#board section[data-env="qa"]');
  await expect(column).toBeVisible();
  await expect(column).toContainText('gate: 1 approval(s)');

  await page.goto(`/projects/${name}`);
  await expect(page.locator('body[data-hydrated="true"]')).toBeVisible();
  await page.locator('#auto-release').check();
  await expect
    .poll(async () => (await ok(page.request.post('/api/projects/show', { data: { project: name } }))).auto_release)
    .toBe(true);
});
