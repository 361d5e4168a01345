import { join } from 'node:path';
import type { LoginCheck } from '@deploykit/core';
import { failCheck, passCheck, type CheckRunner } from './check-types.js';
import { readCredentialsFile } from './credentials-file.js';

/** The outcome of one login attempt: the protected page as a session saw it. */
interface LoginAttempt {
  readonly loginStatus: number;
  readonly cookies: number;
  readonly protectedStatus: number;
  readonly location: string | undefined;
  readonly body: string;
}

/** Posts the login form (urlencoded), keeps the cookies it sets, then fetches the protected page with them. */
async function attemptLogin(
  check: LoginCheck,
  baseUrl: string,
  username: string,
  password: string,
): Promise<LoginAttempt> {
  const jar = new Map<string, string>();
  const keep = (headers: Headers): void => {
    for (const line of headers.getSetCookie()) {
      const pair = line.split(';', 1)[0] ?? '';
      const equals = pair.indexOf('=');
      if (equals > 0) jar.set(pair.slice(0, equals).trim(), pair.slice(equals + 1).trim());
    }
  };
  const cookieHeader = (): Record<string, string> =>
    jar.size > 0 ? { Cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; ') } : {};
  // Fetch the form first: some apps set a session or CSRF cookie there.
  const form = await fetch(new URL(check.login_path, baseUrl), {
    redirect: 'manual',
    signal: AbortSignal.timeout(10_000),
  });
  keep(form.headers);
  await form.arrayBuffer();
  const body = new URLSearchParams({
    [check.username_field ?? 'username']: username,
    [check.password_field ?? 'password']: password,
  });
  const login = await fetch(new URL(check.login_path, baseUrl), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...cookieHeader() },
    body: body.toString(),
    signal: AbortSignal.timeout(10_000),
  });
  keep(login.headers);
  await login.arrayBuffer();
  const page = await fetch(new URL(check.protected_path, baseUrl), {
    redirect: 'manual',
    headers: cookieHeader(),
    signal: AbortSignal.timeout(10_000),
  });
  return {
    loginStatus: login.status,
    cookies: jar.size,
    protectedStatus: page.status,
    location: page.headers.get('location') ?? undefined,
    body: await page.text(),
  };
}

/**
 * Login check: reads the credentials file, posts the form, keeps the cookie and expects text on the
 * protected page. Also proves the negative: the same user with a wrong password must not get in.
 */
export const runLoginCheck: CheckRunner<LoginCheck> = async (check, environment) => {
  const started = Date.now();
  let credentials: Awaited<ReturnType<typeof readCredentialsFile>>;
  try {
    credentials = await readCredentialsFile(join(environment.app.dir, check.credentials_file));
  } catch (error) {
    return failCheck(
      check,
      started,
      `credentials in ${check.credentials_file}`,
      error instanceof Error ? error.message : String(error),
    );
  }
  const what = `POST ${check.login_path} as ${credentials.username}, then GET ${check.protected_path}`;
  let good: LoginAttempt;
  try {
    good = await attemptLogin(check, environment.baseUrl, credentials.username, credentials.password);
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return failCheck(
      check,
      started,
      'HTTP answers',
      `${error instanceof Error ? error.message : String(error)}${cause}`,
      what,
    );
  }
  if (good.protectedStatus !== 200 || !good.body.includes(check.expect)) {
    const got =
      good.protectedStatus >= 300 && good.protectedStatus < 400
        ? `a redirect to ${good.location ?? '?'} (not signed in; the login answered ${good.loginStatus})`
        : `status ${good.protectedStatus} without it (the login answered ${good.loginStatus}, ${good.cookies} cookie(s))`;
    return failCheck(check, started, `the protected page containing ${JSON.stringify(check.expect)}`, got, what);
  }
  // A login form that lets anyone in passes the positive test; a wrong password must be refused.
  let bad: LoginAttempt;
  try {
    bad = await attemptLogin(
      check,
      environment.baseUrl,
      credentials.username,
      `${credentials.password}-wrong-${Date.now()}`,
    );
  } catch (error) {
    return failCheck(
      check,
      started,
      'HTTP answers to the wrong-password attempt',
      error instanceof Error ? error.message : String(error),
    );
  }
  if (bad.protectedStatus === 200 && bad.body.includes(check.expect)) {
    return failCheck(
      check,
      started,
      'a wrong password refused',
      `the protected page containing ${JSON.stringify(check.expect)} after a wrong password`,
      `POST ${check.login_path}`,
    );
  }
  return passCheck(check, started, {
    username: credentials.username,
    loginStatus: good.loginStatus,
    wrongPasswordStatus: bad.loginStatus,
  });
};
