// First-run setup in the browser: a Slipway with an empty database prints a
// one-time `/setup?token=…` link; the link's page creates the first
// administrator, and neither the page nor the API creates a second one.
//
// The server every other spec uses already has its administrator, so this
// spec starts a fresh server of its own (the same binary, site and Postgres
// `cargo xtask test` uses, passed in SLIPWAY_E2E_SERVER, SLIPWAY_E2E_SITE_ROOT
// and SLIPWAY_E2E_DATABASE_BASE) with a new database, and removes both after.
import { test, expect } from '@playwright/test';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Fresh {
  url: string;
  setupLink: string;
  stop: () => void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A Slipway server on a free port over a new, empty database. */
async function freshServer(): Promise<Fresh> {
  const binary = process.env.SLIPWAY_E2E_SERVER;
  const siteRoot = process.env.SLIPWAY_E2E_SITE_ROOT;
  const base = process.env.SLIPWAY_E2E_DATABASE_BASE;
  expect(binary && siteRoot && base, 'SLIPWAY_E2E_SERVER, SLIPWAY_E2E_SITE_ROOT and SLIPWAY_E2E_DATABASE_BASE are set (cargo xtask test sets them)').toBeTruthy();
  const db = `slipway_e2e_setup_${process.pid}_${Date.now()}`;
  execFileSync('psql', [base!, '-q', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${db}`]);
  const dbUrl = `${base!.slice(0, base!.lastIndexOf('/'))}/${db}`;
  const data = mkdtempSync(join(tmpdir(), 'slipway-e2e-setup-'));
  const addr = `127.0.0.1:${await freePort()}`;
  const child: ChildProcess = spawn(
    binary!,
    ['serve', '--addr', addr, '--start-docker', 'false', '--build-worker', 'false', '--registry', 'none',
      '--database-url', dbUrl, '--data-dir', data, '--site-root', siteRoot!],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const stop = () => {
    child.kill('SIGTERM');
    try {
      execFileSync('psql', [base!, '-q', '-c', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  };
  const setupLink = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no setup link within 90 s:\n${output}`)), 90_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const m = output.match(/http:\/\/\S+(\/setup\?token=[A-Za-z0-9_-]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the fresh server exited (${code}):\n${output}`));
    });
  }).catch((e) => {
    stop();
    throw e;
  });
  // The link is printed before the server listens: wait until it answers.
  const url = `http://${addr}`;
  await expect
    .poll(async () => fetch(`${url}/healthz`).then((r) => r.status, () => 0), { timeout: 90_000, message: `the fresh server answers:\n${output}` })
    .toBeGreaterThan(0);
  return { url, setupLink, stop };
}

test('a fresh server sets up its first administrator once, through the link it printed', async ({ browser }) => {
  test.setTimeout(180_000);
  const fresh = await freshServer();
  try {
    const admin = { username: `first-${Date.now()}`, password: 'first admin password' };

    // The link's page: the form that creates the first administrator.
    const context = await browser.newContext({ baseURL: fresh.url });
    const page = await context.newPage();
    await page.goto(fresh.setupLink);
    await expect(page.locator('body[data-hydrated="true"]')).toBeVisible();
    await expect(page.getByRole('heading', { name: 'Create the first administrator' })).toBeVisible();
    const me = await page.request.post('/api/auth/me', { data: {} });
    expect(me.ok(), await me.text()).toBeTruthy();
    expect(await me.json(), 'nobody is logged in before setup').toBeNull();
    await page.locator('#setup input[name="username"]').fill(admin.username);
    await page.locator('#setup input[name="password"]').fill(admin.password);
    await page.getByRole('button', { name: 'Create administrator' }).click();
    // Logged in as the new administrator, on the projects page.
    await expect(page).toHaveURL(/\/projects$/);
    await expect(page.locator('body[data-hydrated="true"]')).toBeVisible();
    await expect(page.locator('#current-user')).toHaveText(admin.username);
    const users = await page.request.post('/api/users/list', { data: {} });
    expect(users.ok(), await users.text()).toBeTruthy();
    const listed = (await users.json()) as { username: string; is_admin: boolean }[];
    expect(listed.map((u) => [u.username, u.is_admin])).toEqual([[admin.username, true]]);

    // The same link again, in another browser: refused, and nobody is created.
    const other = await browser.newContext({ baseURL: fresh.url });
    const second = await other.newPage();
    await second.goto(fresh.setupLink);
    await expect(second.locator('body[data-hydrated="true"]')).toBeVisible();
    await second.locator('#setup input[name="username"]').fill('second-admin');
    await second.locator('#setup input[name="password"]').fill('second admin password');
    await second.getByRole('button', { name: 'Create administrator' }).click();
    await expect(second.getByRole('alert')).toContainText('setup is already complete: users exist; log in instead');
    await expect(second).toHaveURL(/\/setup\?token=/);
    const again = await second.request.post('/api/auth/setup', {
      data: { token: new URL(fresh.setupLink, fresh.url).searchParams.get('token'), username: 'third-admin', password: 'third admin password' },
    });
    expect(again.status(), await again.text()).toBe(409);
    const login = await second.request.post('/api/auth/login', { data: { username: 'second-admin', password: 'second admin password' } });
    expect(login.status(), 'the second setup created no user').toBe(401);
    const after = await page.request.post('/api/users/list', { data: {} });
    expect(((await after.json()) as unknown[]).length).toBe(1);
    await other.close();
    await context.close();
  } finally {
    fresh.stop();
  }
});
