import { test, expect } from '@playwright/test';
import { login } from './auth';

test.beforeEach(async ({ page }) => login(page));

// The e2e server runs a build worker against the test engine and registry,
// so a build started here really runs on BuildKit and pushes.
test('the demo project builds from the dashboard', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/builds');
  await expect(page.locator('body[data-hydrated="true"]')).toBeVisible();

  await page.locator('#new-build input[name="project"]').fill('demo');
  await page.getByRole('button', { name: 'Start build' }).click();
  const started = page.getByRole('status');
  await expect(started).toContainText('Started build');
  await started.getByRole('link').click();

  // Live status: the page refreshes itself until the run ends.
  await expect(page.locator('#build-status')).toHaveText('completed', { timeout: 90_000 });
  const artifacts = page.locator('#artifacts tbody tr');
  await expect(artifacts).toHaveCount(2);
  for (const service of ['api', 'web']) {
    const row = page.locator(`#artifacts tr[data-service="${service}"]`);
    await expect(row.locator('td.digest code')).toHaveText(/^sha256:[0-9a-f]{64}$/);
    await expect(row).toContainText(`/demo/${service}:sha-`);
  }
  await expect(page.locator('#runs tbody tr')).toHaveCount(1);
  await expect(page.locator('#runs tbody tr').first()).toContainText('buildkit');

  // Running it again reuses the artifacts, and says so.
  await page.getByRole('button', { name: 'Run again' }).click();
  await expect(page.locator('#runs tbody tr')).toHaveCount(2);
  await expect(page.locator('#reused-from')).toBeVisible({ timeout: 60_000 });
  await expect(page.locator('#build-status')).toHaveText('completed');
  expect(errors).toEqual([]);
});

test('a bad build request names the field', async ({ page }) => {
  await page.goto('/builds');
  await expect(page.locator('body[data-hydrated="true"]')).toBeVisible();
  await page.locator('#new-build input[name="project"]').fill('demo');
  await page.locator('#new-build input[name="services"]').fill('api, nope');
  await page.getByRole('button', { name: 'Start build' }).click();
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('services[1]');
  await expect(alert).toContainText('unknown service `nope`');
});
