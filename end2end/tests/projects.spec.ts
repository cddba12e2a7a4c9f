import { test, expect, Page } from '@playwright/test';
import { login } from './auth';

test.beforeEach(async ({ page }) => login(page));

// Server-rendered buttons do nothing until the wasm has hydrated the page;
// the app marks <body data-hydrated="true"> when it has.
async function openHydrated(page: Page, path: string) {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(path);
  await expect(page.locator('body[data-hydrated="true"]'), `page errors: ${errors.join('; ')}`).toBeVisible();
  return errors;
}

test('the dashboard lists the seeded demo project', async ({ page }) => {
  const errors = await openHydrated(page, '/');
  await expect(page.getByRole('heading', { name: 'Projects' })).toBeVisible();
  await expect(page.locator('#projects tr[data-project="demo"]')).toBeVisible();
  expect(errors).toEqual([]);
});

test('creating a project through the form lists it without a reload', async ({ page }) => {
  const repo = process.env.SLIPWAY_E2E_REPO;
  expect(repo, 'SLIPWAY_E2E_REPO names a git repository on the server host').toBeTruthy();
  const errors = await openHydrated(page, '/projects');
  const name = `payments-${Date.now()}`;
  let reloaded = false;
  page.on('load', () => (reloaded = true));

  await page.locator('#new-project input[name="name"]').fill(name);
  await page.locator('#new-project input[name="repo_url"]').fill(repo!);
  await page.getByRole('button', { name: 'Create project' }).click();

  await expect(page.locator('#projects td', { hasText: name })).toBeVisible();
  await expect(page.getByRole('status')).toContainText(`Created ${name}`);
  expect(reloaded).toBe(false);

  // The project page is reachable from the list and shows the repository.
  await page.locator('#projects a', { hasText: name }).click();
  await expect(page.getByRole('heading', { name })).toBeVisible();
  await expect(page.locator('.facts')).toContainText(repo!);
  expect(errors).toEqual([]);
});

test('bad input shows every problem, naming the field', async ({ page }) => {
  await openHydrated(page, '/projects');
  await page.locator('#new-project input[name="name"]').fill('broken');
  await page.locator('#new-project input[name="repo_url"]').fill('not/absolute');
  await page.getByRole('button', { name: 'Create project' }).click();
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('repo_url');
  await expect(alert).toContainText('neither an absolute path nor a git URL');
  await expect(page.locator('#projects td', { hasText: 'broken' })).toHaveCount(0);
});

test('an unknown project shows a not-found error, not a crash', async ({ page }) => {
  await openHydrated(page, '/projects/does-not-exist');
  await expect(page.getByRole('alert')).toContainText('not found');
});
