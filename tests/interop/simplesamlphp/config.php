<?php
/*
 * SimpleSAMLphp (Debian's 1.19) configuration of the interop IdP. Copied as is into a private
 * config directory (SIMPLESAMLPHP_CONFIG_DIR) by tests/src/simplesamlphp.rs, next to
 * guichet.json, which holds what changes per run (port, directories, salt, passwords).
 */
$guichet = json_decode(file_get_contents(__DIR__ . '/guichet.json'), true);

$config = [
    // An absolute URL: php -S serves the package's www/ under /simplesaml/ (a symlink).
    'baseurlpath' => $guichet['base_url'],
    'certdir' => $guichet['dir'] . '/cert/',
    'loggingdir' => $guichet['dir'] . '/log/',
    'datadir' => $guichet['dir'] . '/data/',
    'tempdir' => $guichet['dir'] . '/tmp/',
    'metadatadir' => __DIR__ . '/metadata/',
    'metadata.sources' => [['type' => 'flatfile']],
    // The package's attribute maps (name2oid).
    'attributenamemapdir' => '/etc/simplesamlphp/attributemap/',
    'timezone' => 'UTC',

    'secretsalt' => $guichet['secret_salt'],
    'auth.adminpassword' => $guichet['admin_password'],
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'admin.checkforupdates' => false,
    // ReturnTo / RelayState targets allowed besides the IdP itself: the SP's hosts.
    'trusted.url.domains' => $guichet['trusted_domains'],
    'enable.http_post' => false,

    'enable.saml20-idp' => true,
    'enable.shib13-idp' => false,
    'enable.adfs-idp' => false,
    'module.enable' => [
        'exampleauth' => true,
        'core' => true,
        'saml' => true,
    ],

    'showerrors' => true,
    'errorreporting' => false,
    'debug' => ['saml' => false, 'backtraces' => true, 'validatexml' => false],
    // Everything goes to php -S's standard error, which the harness keeps in a file.
    'logging.handler' => 'stderr',
    'logging.level' => SimpleSAML\Logger::INFO,
    'logging.processname' => 'simplesamlphp',
    'statistics.out' => [],

    // Sessions: PHP sessions in the run's directory. Plain HTTP on loopback, hence
    // secure => false (SimpleSAMLphp refuses to load a Secure session cookie over http) and
    // SameSite=Lax (None would need Secure, and browsers drop a None cookie without it): the
    // cookie rides top-level GET navigations (HTTP-Redirect binding) but not cross-site POSTs.
    'store.type' => 'phpsession',
    'session.duration' => 8 * 60 * 60,
    'session.datastore.timeout' => 4 * 60 * 60,
    'session.state.timeout' => 60 * 60,
    'session.cookie.name' => 'SimpleSAMLSessionID',
    'session.cookie.lifetime' => 0,
    'session.cookie.path' => '/',
    'session.cookie.domain' => null,
    'session.cookie.secure' => false,
    'session.cookie.samesite' => 'Lax',
    'session.phpsession.cookiename' => 'SimpleSAML',
    'session.phpsession.savepath' => $guichet['dir'] . '/sessions',
    'session.phpsession.httponly' => true,
    'session.authtoken.cookiename' => 'SimpleSAMLAuthToken',
    'session.rememberme.enable' => false,

    'language.available' => ['en', 'fr'],
    'language.default' => 'en',
    'language.cookie.secure' => false,
    'language.cookie.samesite' => 'Lax',

    'theme.use' => 'default',
    'production' => false,
];
