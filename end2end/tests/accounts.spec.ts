import { test, expect } from '@playwright/test';
import { login } from './auth';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function emptyRepo(): string {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-e2e-acct-'));
  execFileSync('git', ['init', '-q', dir]);
  return dir;
}

test('a member logs in, sees only their projects, and logs out', async ({ page, browser }) => {
  // As the administrator: two projects and a developer who belongs to one of them.
  await login(page);
  const stamp = Date.now();
  const mine = `mine-${stamp}`;
  const theirs = `theirs-${stamp}`;
  for (const name of [mine, theirs]) {
    const r = await page.request.post('/api/projects/create', { data: { input: { name, repo_url: emptyRepo() } } });
    expect(r.ok(), await r.text()).toBeTruthy();
  }
  const username = `dev-${stamp}`;
  const password = `pw-${stamp}-correct-horse`;
  expect((await page.request.post('/api/users/create', { data: { username, password } })).ok()).toBeTruthy();
  const member = await page.request.post('/api/members/set', { data: { project: mine, username, role: 'developer' } });
  expect(member.ok(), await member.text()).toBeTruthy();

  // The developer, in a fresh browser context, through the login form.
  const context = await browser.newContext();
  const dev = await context.newPage();
  await dev.goto('/login');
  await expect(dev.locator('body[data-hydrated="true"]')).toBeVisible();
  await dev.locator('#login input[name="username"]').fill(username);
  await dev.locator('#login input[name="password"]').fill(password);
  await dev.getByRole('button', { name: 'Log in' }).click();
  await expect(dev).toHaveURL(/\/projects$/);
  await expect(dev.locator('body[data-hydrated="true"]')).toBeVisible();
  await expect(dev.locator('#current-user')).toHaveText(username);
  await expect(dev.locator(`#projects tr[data-project="${mine}"]`)).toBeVisible();
  await expect(dev.locator(`#projects tr[data-project="${theirs}"]`)).toHaveCount(0);
  await expect(dev.locator('#projects tr[data-project="demo"]')).toHaveCount(0);
  // Another project's page is not found, exactly like a missing one.
  await dev.goto(`/projects/${theirs}`);
  await expect(dev.getByRole('alert')).toContainText('not found');

  await dev.locator('#logout').click();
  await expect(dev).toHaveURL(/\/login$/);
  const after = await dev.request.post('/api/projects/list', { data: {} });
  expect(after.status()).toBe(401);
  await context.close();
});

test('a wrong password is refused with a clear message', async ({ page }) => {
  await page.goto('/login');
  await expect(page.locator('body[data-hydrated="true"]')).toBeVisible();
  await page.locator('#login input[name="username"]').fill('nobody-here');
  await page.locator('#login input[name="password"]').fill('wrong-password-123');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('alert')).toContainText(/password/i);
});
