<?php
/*
 * The interop IdP itself. Its entity ID is its metadata URL; its signing key is
 * idp-signing-key.pem (committed, test only), its certificate made at start by the harness.
 */
$guichet = json_decode(file_get_contents(dirname(__DIR__) . '/guichet.json'), true);

$metadata[$guichet['idp_entity_id']] = [
    'host' => '__DEFAULT__',
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'guichet-users',

    // Sign the Response and the Assertion inside it.
    'saml20.sign.response' => true,
    'saml20.sign.assertion' => true,
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',

    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri',
    'NameIDFormat' => [
        'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
        'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
    ],
    'userid.attribute' => 'uid',

    // Endpoints published in the metadata. Single logout: HTTP-Redirect only, since the
    // session cookie (SameSite=Lax, see config.php) does not ride a cross-site POST.
    'SingleSignOnServiceBinding' => [
        'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
        'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
    ],
    'SingleLogoutServiceBinding' => ['urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect'],

    // Front-channel logout with redirects, one SP after the other.
    'logouttype' => 'traditional',

    'authproc' => [
        // NameIDs, from the friendly attributes (before they are renamed): persistent = uid,
        // emailAddress = mail. Which one is sent: the AuthnRequest's NameIDPolicy Format if
        // it is one of these, else the SP's first NameIDFormat.
        10 => [
            'class' => 'saml:AttributeNameID',
            'attribute' => 'uid',
            'Format' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
        ],
        11 => [
            'class' => 'saml:AttributeNameID',
            'attribute' => 'mail',
            'Format' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
        ],
        // uid -> urn:oid:0.9.2342.19200300.100.1.1, mail -> urn:oid:0.9.2342.19200300.100.1.3...
        90 => ['class' => 'core:AttributeMap', 'name2oid'],
    ],
];
