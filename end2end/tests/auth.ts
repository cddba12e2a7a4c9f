import { Page, expect } from '@playwright/test';

/** The administrator `cargo xtask test` created for this run. */
export const admin = {
  username: process.env.SLIPWAY_E2E_ADMIN ?? 'e2e-admin',
  password: process.env.SLIPWAY_E2E_PASSWORD ?? '',
};

/** Logs the page's browser context in (the cookie is shared with page.request). */
export async function login(page: Page, username = admin.username, password = admin.password) {
  const res = await page.request.post('/api/auth/login', { data: { username, password } });
  expect(res.ok(), `login as ${username}: ${await res.text()}`).toBeTruthy();
}
