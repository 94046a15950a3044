/* config_env.c -- configuration from the environment names sslserver and
 * s6-tlsd read.  See mailtls.h. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

extern char **environ;

static int fail_var(struct mailtls_config *cfg, const char *var)
{
	char msg[MT_ERRLEN];
	snprintf(msg, sizeof msg, "%s", cfg->errmsg);
	mt_cfg_seterr(cfg, cfg->errcode, "%s: %s", var, msg);
	return -1;
}

int mailtls_config_from_env(struct mailtls_config *cfg)
{
	const char *cert = getenv("CERTFILE"), *key = getenv("KEYFILE");
	const char *chain = getenv("CERTCHAINFILE"), *cafile = getenv("CAFILE");
	const char *cadir = getenv("CADIR"), *ciphers = getenv("CIPHERS");
	int loaded = 0;
	mt_cfg_clearerr(cfg);
	if (!cert || !*cert)
		cert = chain && *chain ? chain : NULL;
	if (cert) {
		if (mailtls_config_set_keypair_file(cfg, cert, key && *key ? key : NULL) < 0)
			return fail_var(cfg, "CERTFILE");
		loaded++;
	}
	if ((cafile && *cafile) || (cadir && *cadir)) {
		if (mailtls_config_set_ca(cfg, cafile && *cafile ? cafile : NULL, cadir && *cadir ? cadir : NULL) < 0)
			return fail_var(cfg, cafile && *cafile ? "CAFILE" : "CADIR");
		/* servers fork after this: the anchors parsed once, here */
		mt_ca_load(cfg);
	}
	if (ciphers && *ciphers && mailtls_config_set_ciphers(cfg, ciphers) < 0)
		return fail_var(cfg, "CIPHERS");
	for (char **e = environ; e && *e; e++) {
		char var[512], keyvar[600];
		const char *eq = strchr(*e, '='), *kf;
		size_t n;
		if (strncmp(*e, "CERTFILE:", 9) || !eq)
			continue;
		n = (size_t)(eq - *e);
		if (n >= sizeof var || n == 9)
			continue;
		memcpy(var, *e, n);
		var[n] = 0;
		snprintf(keyvar, sizeof keyvar, "KEYFILE:%s", var + 9);
		kf = getenv(keyvar);
		if (mailtls_config_add_sni_keypair_file(cfg, var + 9, eq + 1, kf && *kf ? kf : NULL) < 0)
			return fail_var(cfg, var);
		loaded++;
	}
	return loaded;
}
