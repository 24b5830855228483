<?php
/*
 * The SP under test, as the harness's SpRegistration describes it (guichet.json "sp").
 */
$guichet = json_decode(file_get_contents(dirname(__DIR__) . '/guichet.json'), true);
$sp = $guichet['sp'];

$acs = [];
foreach ($sp['acs_urls'] as $index => $url) {
    $acs[] = [
        'Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
        'Location' => $url,
        'index' => $index,
        'isDefault' => $index === 0,
    ];
}

$metadata[$sp['entity_id']] = [
    'AssertionConsumerService' => $acs,
    'SingleLogoutService' => [[
        'Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
        'Location' => $sp['slo_url'],
    ]],
    // The SP's signing and encryption certificate (PEM file in the cert directory).
    'certificate' => 'sp.crt',

    // Does the IdP require signed AuthnRequests / logout messages from the SP?
    'validate.authnrequest' => $sp['signs_messages'],
    'validate.logout' => $sp['signs_messages'],
    // Does the IdP sign the logout messages it sends to the SP?
    'sign.logout' => $sp['sign_logout'],
    // Encrypted assertions: RSA-OAEP-MGF1P (SHA-1) key transport, AES-128-CBC content.
    'assertion.encryption' => $sp['encrypt_assertions'],

    'NameIDFormat' => [
        'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
        'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
    ],
    // Only used for a format no authproc filter produced a NameID for (the value is read
    // after the attributes got their OID names).
    'simplesaml.nameidattribute' => 'urn:oid:0.9.2342.19200300.100.1.1',
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri',
];
