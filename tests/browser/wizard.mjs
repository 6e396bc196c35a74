// The first-run journey in a real browser: complete the wizard with the setup code, log
// out, log in, change a setting, and find the change in the audit log. Every page is
// kept as a screenshot. The browser reaches the cell over HTTPS, trusting its root from its
// own certificate database (a certificate error fails the first visit).
// Run: node wizard.mjs BASE_URL SETUP_CODE SCREENSHOT_DIR ROOT_FINGERPRINT
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const [base, code, shots, fingerprint] = process.argv.slice(2);
if (!base || !code || !shots || !fingerprint) {
  console.error('usage: node wizard.mjs BASE_URL SETUP_CODE SCREENSHOT_DIR ROOT_FINGERPRINT');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
let step = 0;
let failures = 0;
async function shot(name) {
  step += 1;
  await page.screenshot({ path: `${shots}/${String(step).padStart(2, '0')}-${name}.png`, fullPage: true });
}
function check(what, ok, detail = '') {
  console.log(`${ok ? 'ok' : 'not ok'} - ${what}${ok || !detail ? '' : ` (${detail})`}`);
  if (!ok) failures += 1;
}

try {
  await page.goto(`${base}/`);
  check('the first visit lands on the setup wizard, over HTTPS',
    page.url() === `${base}/setup` && base.startsWith('https://'), page.url());
  const shown = (await page.textContent('#root-fingerprint') || '').trim();
  check('the wizard shows the root fingerprint the person compares with the console',
    shown === fingerprint, shown);
  await shot('setup');

  // A wrong code first: the form must say so, next to the field, and keep what was typed.
  await page.fill('#code', 'AAAA-AAAA');
  await page.fill('#cell_name', 'home');
  await page.fill('#timezone', 'Europe/Berlin');
  await page.fill('#admin_username', 'alice');
  await page.fill('#admin_password', 'correct horse battery');
  await page.fill('#admin_password_again', 'correct horse battery');
  await page.click('button[type=submit]');
  check('a wrong setup code is explained at its field', await page.isVisible('#code-error'));
  check('the form keeps what was typed', (await page.inputValue('#cell_name')) === 'home');
  await shot('setup-wrong-code');

  await page.fill('#code', code.toLowerCase());
  await page.fill('#admin_password', 'correct horse battery');
  await page.fill('#admin_password_again', 'correct horse battery');
  await page.click('button[type=submit]');
  check('setup ends on the page that follows the settings being applied',
    page.url().endsWith('/setup/done') && await page.isVisible('#setup-progress'), page.url());
  await shot('setup-done');
  await page.click('#continue');
  check('and leads on to the login page', page.url().includes('/login'), page.url());
  await shot('login-after-setup');

  await page.fill('#username', 'alice');
  await page.fill('#password', 'correct horse battery');
  await page.click('button[type=submit]');
  check('login shows the dashboard', (await page.textContent('h1'))?.trim() === 'home');
  await shot('dashboard');

  await page.click('button.link'); // Log out
  check('logging out returns to the login page', page.url().endsWith('/login'), page.url());
  await page.goto(`${base}/settings`);
  check('pages need a session after logout', page.url().endsWith('/login'), page.url());

  await page.fill('#username', 'alice');
  await page.fill('#password', 'wrong password here');
  await page.click('button[type=submit]');
  check('a wrong password is refused with a message', await page.isVisible('p.error'));
  await shot('login-refused');
  await page.fill('#password', 'correct horse battery');
  await page.click('button[type=submit]');

  await page.goto(`${base}/settings`);
  await shot('settings');
  await page.fill('#timezone', 'Not/A Zone');
  await page.click('form[action="/settings"] button[type=submit]');
  check('an invalid time zone is refused at its field', await page.isVisible('#timezone-error'));
  await shot('settings-invalid');
  await page.fill('#timezone', 'America/New_York');
  await page.click('form[action="/settings"] button[type=submit]');
  check('saving reports the new generation', (await page.textContent('.notice'))?.includes('generation') ?? false);
  await shot('settings-saved');

  await page.goto(`${base}/audit`);
  const audit = await page.textContent('main');
  check('the audit log shows the change', audit.includes('Europe/Berlin → America/New_York'));
  check('the audit log chain is intact', (await page.textContent('#chain')).includes('Intact'));
  await shot('audit');

  await page.goto(`${base}/users`);
  await page.fill('#name', 'bob');
  await page.fill('#password', 'another long password');
  await page.click('form[action="/users"] button[type=submit]');
  check('an admin adds a user', (await page.textContent('table')).includes('bob'));
  await shot('users');

  await page.goto(`${base}/vpn`);
  await shot('vpn');
  await page.fill('#endpoint', 'vpn.example.org');
  await page.click('form[action="/vpn"] button[type=submit]');
  check('the VPN endpoint is saved', (await page.textContent('.notice'))?.includes('saved') ?? false);
  await page.fill('#name', 'my phone');
  await page.click('form[action="/vpn/peers"] button[type=submit]');
  check('a bad device name is refused at its field', await page.isVisible('#name-error'));
  await page.fill('#name', 'phone');
  await page.check('input[name=files]');
  await page.click('form[action="/vpn/peers"] button[type=submit]');
  // The QR code is an image of its own: wait for it to load (not only to be in the page).
  const qrLoaded = await page
    .waitForFunction(() => {
      const img = document.querySelector('img.qr');
      return img !== null && img.complete && img.naturalWidth > 0;
    }, null, { timeout: 15000 })
    .then(() => true, () => false);
  check('adding a device shows its QR code', qrLoaded);
  await shot('vpn-device');
  const download = await page.request.get(`${base}/api/v1/vpn/peers/phone/config`);
  check('the device configuration downloads', (await download.text()).includes('Endpoint = vpn.example.org:51820'));
  await page.goto(`${base}/firewall`);
  check('the firewall page shows the live table', (await page.textContent('pre.ruleset'))?.includes('table inet cell') ?? false);
  await shot('firewall');

  await page.click('nav a[href="/update"]');
  check('the Updates page shows the running version',
    ((await page.textContent('#current-version')) ?? '').trim().length > 0);
  await page.fill('#url', 'ftp://updates.example.org/');
  await page.click('form[action="/update/url"] button[type=submit]');
  check('a non-HTTP update server is refused at its field', await page.isVisible('#url-error'));
  await page.fill('#url', 'https://updates.example.org/cell');
  await page.click('form[action="/update/url"] button[type=submit]');
  check('the update server is saved', (await page.textContent('.notice'))?.includes('saved') ?? false);
  check('and checking for updates is offered', await page.isVisible('form[action="/update/check"] button'));
  await shot('update');

  await page.goto(`${base}/account`);
  await shot('account');
} catch (error) {
  console.log(`not ok - the journey broke: ${error.message}`);
  failures += 1;
  await shot('failure').catch(() => {});
} finally {
  await browser.close();
}
console.log(failures ? `# ${failures} browser check(s) failed` : '# all browser checks passed');
process.exit(failures ? 1 : 0);
