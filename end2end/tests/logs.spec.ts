import { test, expect } from '@playwright/test';
import { login } from './auth';

test.beforeEach(async ({ page }) => login(page));
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A repository whose build prints a line every 300 ms, so the page is open
// while the run is still producing output.
function slowRepo(): string {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-e2e-logs-'));
  mkdirSync(join(dir, '.slipway'));
  mkdirSync(join(dir, 'ticker'));
  writeFileSync(join(dir, '.slipway/manifest.yaml'), 'services:\n  ticker:\n    build: ticker\n');
  writeFileSync(
    join(dir, 'ticker/Dockerfile'),
    // The nonce keeps BuildKit from answering the RUN step from its cache.
    `FROM slipway/busybox:1\nRUN echo nonce-${Date.now()} && for i in 1 2 3 4 5 6 7 8 9 10; do echo "tick $i"; sleep 0.3; done\n`,
  );
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', dir, '-c', 'user.name=e2e', '-c', 'user.email=e2e@localhost', ...args]);
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '-m', 'ticker');
  return dir;
}

test('a running build shows its log lines as they arrive', async ({ page }) => {
  const request = page.request;
  const repo = slowRepo();
  const name = `ticker-${Date.now()}`;
  const created = await request.post('/api/projects/create', { data: { input: { name, repo_url: repo } } });
  expect(created.ok()).toBeTruthy();
  const build = await request.post('/api/builds/create', { data: { input: { project: name, force_rebuild: true } } });
  expect(build.ok()).toBeTruthy();
  const buildId = (await build.json()).spec.id as string;

  await page.goto(`/builds/${buildId}`);
  await expect(page.locator('body[data-hydrated="true"]')).toBeVisible();
  const log = page.locator('#log');
  // Lines arrive while the RUN step is still going…
  await expect(log).toContainText('tick 2', { timeout: 30_000 });
  await expect(page.locator('#build-status')).not.toHaveText('completed');
  // …then the rest, and the end of the run.
  await expect(log).toContainText('tick 10', { timeout: 30_000 });
  await expect(page.locator('#log-end')).toContainText('completed', { timeout: 30_000 });
  // Step sections carry the BuildKit step name.
  await expect(page.locator('.log-step[data-step*="RUN echo nonce"]')).toBeVisible();

  // Search narrows the lines; every line has a link.
  await page.locator('#log-search').fill('tick 7');
  await expect(log.locator('.log-line')).toHaveCount(1);
  await expect(log.locator('.log-line a.ln')).toHaveAttribute('href', /^#L\d+$/);
});

test('a 100,000-line log renders only the rows in view and stays searchable', async ({ page }) => {
  const request = page.request;
  const dir = mkdtempSync(join(tmpdir(), 'slipway-e2e-big-'));
  mkdirSync(join(dir, '.slipway'));
  mkdirSync(join(dir, 'big'));
  writeFileSync(join(dir, '.slipway/manifest.yaml'), 'registry: none\nservices:\n  big:\n    build: big\n');
  writeFileSync(join(dir, 'big/Dockerfile'), // BuildKit drops step output above about 100 KiB/s, so pace it: 10,000 lines a second.
    `FROM slipway/busybox:1\nRUN echo nonce-${Date.now()} && for i in 0 1 2 3 4 5 6 7 8 9; do seq $((i*10000+1)) $((i*10000+10000)); sleep 1; done\n`);
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', dir, '-c', 'user.name=e2e', '-c', 'user.email=e2e@localhost', ...args]);
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '-m', 'big');
  const name = `big-${Date.now()}`;
  expect((await request.post('/api/projects/create', { data: { input: { name, repo_url: dir } } })).ok()).toBeTruthy();
  const build = await request.post('/api/builds/create', { data: { input: { project: name, force_rebuild: true } } });
  const buildId = (await build.json()).spec.id as string;

  await page.goto(`/builds/${buildId}`);
  await expect(page.locator('body[data-hydrated="true"]')).toBeVisible();
  await expect(page.locator('#log-end')).toContainText('completed', { timeout: 90_000 });
  const count = Number((await page.locator('#log-count').innerText()).split(' ')[0]);
  expect(count).toBeGreaterThan(100_000);
  // Virtualised: a few hundred rows in the DOM, not 100,000.
  expect(await page.locator('#log .log-row').count()).toBeLessThan(400);
  // Following the tail shows the last line; scrolling to the top shows the first steps.
  await expect(page.locator('#log')).toContainText('100000');
  await page.locator('#log').evaluate((el) => (el.scrollTop = 0));
  await expect(page.locator('#log')).toContainText('cloning');
  await expect(page.locator('#log-follow')).toBeVisible();
  await page.locator('#log-search').fill('99999');
  await expect(page.locator('#log .log-line')).toHaveCount(1);
});
